"""containerd on a private socket, root and state, without its CRI plugin: the daemon
tests/oci/test_engines.py and benchmarks/bench_oci.py drive (no pytest in here)."""

from __future__ import annotations

import signal
import subprocess
import time


class Containerd:
    def __init__(self, base: str):
        self.base, self.sock = base, f"{base}/containerd.sock"
        with open(f"{base}/config.toml", "w") as f:
            f.write(f'version = 2\nroot = "{base}/ctd-root"\nstate = "{base}/ctd-state"\n'
                    'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                    f'[grpc]\n  address = "{self.sock}"\n[ttrpc]\n  address = "{self.sock}.ttrpc"\n'
                    '[debug]\n  address = ""\n[metrics]\n  address = ""\n')
        self.command = ["ctr", "-a", self.sock]  # ctr talking to this daemon
        self.log = open(f"{base}/containerd.log", "w")
        self.proc = subprocess.Popen(["containerd", "-c", f"{base}/config.toml"], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while subprocess.run(self.command + ["version"], capture_output=True).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"containerd did not start (see {base}/containerd.log)")
            time.sleep(0.1)

    def _ids(self, *what: str) -> list[str]:
        return subprocess.run(self.command + [*what, "ls", "-q"], capture_output=True, text=True,
                              timeout=60).stdout.split()

    def stop(self) -> None:
        """Every task killed and deleted, every container deleted, the daemon stopped, its mounts gone."""
        if self.proc.poll() is None:
            for task in self._ids("task"):
                subprocess.run(self.command + ["task", "kill", "-s", "KILL", task], capture_output=True, timeout=60)
                subprocess.run(self.command + ["task", "delete", "-f", task], capture_output=True, timeout=60)
            for container in self._ids("containers"):
                subprocess.run(self.command + ["containers", "delete", container], capture_output=True, timeout=60)
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.log.close()
        subprocess.run(["umount", "-R", f"{self.base}/ctd-root"], capture_output=True)
