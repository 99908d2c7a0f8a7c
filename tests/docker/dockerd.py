"""dockerd on private paths, and the docker client that talks to it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

DOCKER = "/usr/bin/docker"  # Debian's docker.io client, matched to its dockerd
OCI = os.path.join(os.path.dirname(sys.executable), "minirun-oci")
IMAGE = "minirun-busybox"
RUNTIMES = ("runc", "minirun")


class Docker:
    """dockerd with its own data root, exec root, socket and managed containerd."""

    def __init__(self, base: str, runtimes: dict[str, str] | None = None, extra_args: tuple[str, ...] = ()):
        """``runtimes``: name -> runtime binary added beside runc (default: minirun, the venv's minirun-oci);
        ``extra_args``: more dockerd flags (the benchmarks' --iptables=false --bridge=none)."""
        self.base, self.sock = base, f"{base}/docker.sock"
        added = [f"--add-runtime={name}={path}" for name, path in (runtimes or {"minirun": OCI}).items()]
        with open(f"{base}/daemon.json", "w") as f:  # not the host's daemon.json, nor /etc/docker/key.json
            f.write(f'{{"deprecated-key-path": "{base}/key.json"}}\n')
        self.log = open(f"{base}/dockerd.log", "w")
        self.proc = subprocess.Popen(
            ["dockerd", "--config-file", f"{base}/daemon.json", "--data-root", f"{base}/data",
             "--exec-root", f"{base}/exec", "--pidfile", f"{base}/dockerd.pid", "-H", f"unix://{self.sock}",
             "--exec-opt", "native.cgroupdriver=cgroupfs", *added, *extra_args],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while self("version").returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start; its log:\n{self.daemon_log()[-4000:]}")
            time.sleep(0.1)

    def __call__(self, *args: str, timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([DOCKER, "-H", f"unix://{self.sock}", *args], capture_output=True, text=True,
                              timeout=timeout, input=input, stdin=None if input is not None else subprocess.DEVNULL)

    def ok(self, *args: str, **kw) -> str:
        out = self(*args, **kw)
        assert out.returncode == 0, f"docker {' '.join(args)}: rc {out.returncode}: {out.stderr}"
        return out.stdout

    def argv(self, *args: str) -> list[str]:
        return [DOCKER, "-H", f"unix://{self.sock}", *args]

    def daemon_log(self) -> str:
        """dockerd's log, with its managed containerd's and the shims' lines."""
        with open(f"{self.base}/dockerd.log") as f:
            return f.read()

    def network_markers(self) -> list[str]:
        """Bridge names and subnets of docker's networks: what its iptables rules name."""
        markers = []
        for net in self("network", "ls", "-q").stdout.split():
            fmt = '{{index .Options "com.docker.network.bridge.name"}} {{range .IPAM.Config}}{{.Subnet}} {{end}}'
            markers += self("network", "inspect", "-f", fmt, net).stdout.split()
            markers.append(f"br-{net[:12]}")
        return markers

    def remove_all(self) -> None:
        ids = self("ps", "-aq").stdout.split()
        if ids:
            self("rm", "-f", *ids)

    def stop(self) -> list[str]:
        markers = []
        if self.proc.poll() is None:
            self.remove_all()
            self("network", "prune", "-f")
            markers = self.network_markers()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.unmount_all()
        return markers

    def mounts(self) -> list[str]:
        """Mount points under our paths (dockerd bind-mounts the host's netns at E/netns/default)."""
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        return [p for p in points if p.startswith(self.base + "/")]

    def unmount_all(self) -> None:
        for point in sorted(self.mounts(), key=len, reverse=True):
            subprocess.run(["umount", point], capture_output=True)
