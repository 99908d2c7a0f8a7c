"""Take every measurement of `minirun compare`, now, and return them raw.

Order of work (each backend that cannot run is skipped with its reason):

  1. host facts: kernel, CPU, memory, versions; plant the host-only evidence the
     isolation probes look for (a process with a token in its command line, a
     file holding the token), build the escape-probe helper if gcc can;
  2. one suite per backend: every unit of units.SUITE in ONE instance (one VM
     boot); while it runs the host checks its own mount table and hostname when
     the probes report their attempts; afterwards it checks the shared directory,
     /proc/modules and boot_id;
     Container and VM are on the minirun0 bridge: each pings the bridge and a
     peer container there, then waits on `nc -l` while the host pings it and
     sends it a bounded TCP stream (see :func:`host_to_instance`);
  3. the VM's storage boot (a host directory shared with -v, 9p; the generic
     kernel, since the cloud one has no 9p), the only second suite;
  4. performance: the CPU and syscall workloads once per instance, N rounds, the
     host and container columns alternated (the VM keeps its suite's samples);
  5. deployment: `echo up` (time to its output) and `true` (end to end) through
     each backend's command line, N times, interleaved;
  6. density: k idle instances per backend at once; memory per instance; teardown;
  7. disk footprint: ROOTFS vs kernel + initramfs.

Nothing here formats; report.py turns the dict into rows.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import escapes, units
from .runners import ContainerRunner, HostRunner, RuncRunner, SuiteRun, VMRunner

SCHEMA_ID = "minirun-compare/2"
BACKENDS = ("host", "container", "runc", "runc_spec", "vm")  # runc_spec only with --peer-defaults
PROBE_SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "csrc", "probe.c")
CONTAINER_PROBE_PATH = "/.minirun-probe/probe"  # minirun.probes.PROBE_DIR + "/probe"


@dataclass
class Options:
    rootfs: str
    runs: int = 5
    accel: str = "auto"
    containers: int = 3
    vms: int = 2
    store_mb: int = 16
    pings: int = 10
    net_mb: int = 32  # TCP host -> instance: at most this many MiB ...
    net_s: float = 5.0  # ... and at most this many seconds of sending
    peer_defaults: bool = False  # also runc with `runc spec`'s own security (the runc_spec column)


TCP_PORT = 5201  # inside each instance (each has its own address)


def stats(samples: list[float]) -> dict | None:
    if not samples:
        return None
    return {"n": len(samples), "median": statistics.median(samples), "min": min(samples), "max": max(samples)}


# ---------------------------------------------------------------------------------------------- host facts


def _read(path: str, default: str = "") -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def meminfo() -> dict[str, int]:
    out = {}
    for line in _read("/proc/meminfo").splitlines():
        key, _, rest = line.partition(":")
        if rest.strip().endswith("kB"):
            out[key] = int(rest.split()[0]) * 1024
    return out


def cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def host_macs() -> dict[str, str]:
    """Non-loopback interfaces of the host's network namespace: name -> MAC."""
    out = {}
    for name in os.listdir("/sys/class/net"):
        mac = _read(f"/sys/class/net/{name}/address")
        if mac and mac != "00:00:00:00:00:00":
            out[name] = mac
    return out


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.splitlines()[0].strip() if out else ""


def tree_bytes(root: str) -> int:
    """Disk blocks used under ``root`` (hard links once, symlinks not followed)."""
    seen, total = set(), 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def environment(opts: Options, vm: VMRunner, runc: RuncRunner, host: HostRunner) -> dict:
    import minirun

    mem = meminfo()
    qemu = ""
    if vm.plan is not None:
        match = re.search(r"version (\S+)", tool_version([vm.plan.qemu, "--version"]))
        qemu = match.group(1) if match else ""
    accel = {"name": vm.plan.accel.name, "reason": vm.plan.accel.reason} if vm.plan is not None else None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hostname": os.uname().nodename,
        "kernel": os.uname().release,
        "kernel_version": os.uname().version,
        "arch": os.uname().machine,
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count() or 1,
        "mem_total_bytes": mem.get("MemTotal", 0),
        "mem_available_bytes": mem.get("MemAvailable", 0),
        "accel": accel,
        "loadavg": [float(x) for x in _read("/proc/loadavg", "0 0 0").split()[:3]],
        "versions": {
            "minirun": minirun.__version__,
            "python": platform.python_version(),
            "qemu": qemu,
            "runc": runc.version() if runc.unavailable() is None else "",
            "busybox": host.version(),
            "guest_kernel": vm.plan.kernel.release if vm.plan is not None else "",
        },
    }


# ---------------------------------------------------------------------------------------------- host-side evidence


class HostEvidence:
    """What the isolation probes look for, planted on the host, and the host's own view while they run."""

    def __init__(self, busybox: str):
        self.token = "mrc-" + os.urandom(6).hex()
        self.pattern = units.pattern_for(self.token)
        # /var/tmp: on the root device (the block-device escape probe looks for the file there), unlike a tmpfs /tmp
        self.dir = tempfile.mkdtemp(prefix="mrc-host-", dir="/var/tmp" if os.path.isdir("/var/tmp") else None)
        self.file = os.path.join(self.dir, "marker")
        with open(self.file, "w") as f:
            f.write(self.token + "\n")
        # A shell waiting in its `read` builtin: one process, the token as its $0, no child to orphan.
        self.proc = subprocess.Popen([busybox, "sh", "-c", "read x", self.token], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.hostname = os.uname().nodename
        self.boot_id = _read("/proc/sys/kernel/random/boot_id")
        self.modules = self._modules()
        self.macs = host_macs()
        self.listener = socket.socket()  # what the host-network escape probe tries to reach
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]

    @staticmethod
    def _modules() -> set[str]:
        return {line.split()[0] for line in _read("/proc/modules").splitlines() if line}

    @staticmethod
    def mounted(source: str) -> bool:
        with open("/proc/self/mountinfo") as f:
            return any(source in line.split(" - ", 1)[-1].split()[1:2] for line in f)

    def watcher(self, checks: dict, mnt_source: str) -> Callable[[units.Marker], None]:
        """Called with each marker as it arrives: look at the host while the instance still holds its attempt."""

        def on_marker(m: units.Marker) -> None:
            if m.unit == "hostname" and m.key == "attempt":
                checks["host_hostname_after"] = os.uname().nodename
                checks["host_hostname_changed"] = os.uname().nodename != self.hostname
            elif m.unit == "mount" and m.key == "attempt":
                checks["host_sees_mount"] = self.mounted(mnt_source)

        return on_marker

    def after(self, checks: dict, survivor_path: str | None, survivor: str) -> None:
        checks["host_boot_id_unchanged"] = _read("/proc/sys/kernel/random/boot_id") == self.boot_id
        checks["host_modules_added"] = sorted(self._modules() - self.modules)
        checks["host_hostname_unchanged_after"] = os.uname().nodename == self.hostname
        if survivor_path is not None:
            checks["survivor_found"] = _read(survivor_path) == survivor

    def unmount_leftovers(self) -> None:
        """Unmount what the host's own mount probe left (any mount whose source holds the token)."""
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f if self.token[4:] in line.split(" - ", 1)[-1]]
        for point in reversed(points):
            subprocess.run(["umount", point.replace("\\040", " ")], capture_output=True)

    def close(self) -> None:
        self.unmount_leftovers()
        self.listener.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdin.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def build_probe_helper(workdir: str) -> tuple[str | None, str]:
    """Static csrc/probe.c (the security engineer's escape helper) in workdir/probe/, or (None, why not)."""
    if not os.path.isfile(PROBE_SOURCE):
        return None, f"{PROBE_SOURCE} not found (an installed minirun has no csrc/)"
    if not shutil.which("gcc"):
        return None, "gcc is not installed"
    out_dir = os.path.join(workdir, "probe")
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, "probe")
    proc = subprocess.run(["gcc", "-static", "-O2", "-o", out, PROBE_SOURCE], capture_output=True, text=True)
    if proc.returncode != 0:
        return None, f"gcc -static failed: {proc.stderr.strip()[-200:]}"
    return out_dir, "built from csrc/probe.c"


# ---------------------------------------------------------------------------------------------- bridge


def host_to_instance(busybox: str, address: str, port: int, pings: int, max_bytes: int, max_s: float,
                     connect_s: float = 10) -> dict:
    """The host's side of the network unit: ping the instance, then send it at most ``max_bytes`` (and at most
    ``max_s`` seconds of sending) over TCP; the instance's `nc -l -e wc -c` answers with the byte count it
    read, so the time runs from connect to that answer (everything arrived), not to the last send()."""
    out: dict = {"address": address}
    try:
        proc = subprocess.run([busybox, "ping", "-c", str(pings), "-i", "0.05", "-q", address], capture_output=True,
                              text=True, timeout=30 + pings)
        line = [ln for ln in proc.stdout.splitlines() if "round-trip" in ln]
        out["ping"] = line[0] if line else (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no reply"]
        if isinstance(out["ping"], list):
            out["ping_error"] = out.pop("ping")[0]
    except (OSError, subprocess.TimeoutExpired) as err:
        out["ping_error"] = str(err)
    deadline = time.monotonic() + connect_s
    sock = None
    while sock is None:
        try:
            sock = socket.create_connection((address, port), timeout=5)
        except OSError as err:  # the listener may not be up yet
            if time.monotonic() > deadline:
                out["tcp_error"] = f"connect {address}:{port}: {err}"
                return out
            time.sleep(0.05)
    chunk = bytes(65536)
    sent = 0
    try:
        with sock:
            sock.settimeout(max_s + 30)
            t0 = time.perf_counter()
            while sent < max_bytes and time.perf_counter() - t0 < max_s:
                sent += sock.send(chunk[:max_bytes - sent])
            sock.shutdown(socket.SHUT_WR)
            reply = b""
            while part := sock.recv(256):
                reply += part
            elapsed = time.perf_counter() - t0
        received = int(reply.strip() or b"-1")
        out["tcp"] = {"bytes_sent": sent, "bytes_received": received, "seconds": elapsed}
    except (OSError, ValueError) as err:
        out["tcp_error"] = f"after {sent} bytes: {err}"
    return out


class BridgeWatcher:
    """Runs :func:`host_to_instance` in a thread when the instance reports it listens (markers arrive on the
    backend's reader, which must not block); :meth:`join` puts the result in the suite's host checks."""

    def __init__(self, busybox: str, opts: Options):
        self.busybox, self.opts = busybox, opts
        self.thread: threading.Thread | None = None
        self.result: dict | None = None

    def on_marker(self, m: units.Marker) -> None:
        if m.unit == "network" and m.key == "listen" and self.thread is None:
            address, _, port = m.value.partition(" ")

            def work():
                self.result = host_to_instance(self.busybox, address, int(port), self.opts.pings,
                                               self.opts.net_mb << 20, self.opts.net_s)

            self.thread = threading.Thread(target=work, name="mrc-bridge", daemon=True)
            self.thread.start()

    def join(self, checks: dict) -> None:
        if self.thread is not None:
            self.thread.join(self.opts.net_s + 90)
            checks["bridge"] = self.result or {"error": "the host side did not finish"}


def _both(*callbacks):
    def on_marker(m):
        for cb in callbacks:
            cb(m)

    return on_marker


# ---------------------------------------------------------------------------------------------- deployment


def timed_command(argv: list[str], wait_for: bytes | None = None, timeout: float = 300) -> dict:
    """Wall time of ``argv``; with ``wait_for``, also the time until that text appeared on its stdout."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = None
    out = b""
    while chunk := proc.stdout.read1(65536):
        out += chunk
        if first is None and wait_for and wait_for in out:
            first = time.perf_counter() - t0
    err = proc.stderr.read()
    code = proc.wait(timeout)
    wall = time.perf_counter() - t0
    proc.stdout.close()
    proc.stderr.close()
    sample = {"wall_s": wall, "exit_code": code}
    if wait_for:
        sample["output_s"] = first
    if code != 0:
        sample["error"] = err.decode(errors="replace").strip()[-300:]
    return sample


# ---------------------------------------------------------------------------------------------- the run


class Measurement:
    def __init__(self, opts: Options, progress: Callable[[str], None] | None = None):
        self.opts = opts
        self.say = progress or (lambda m: None)
        runners = {
            "host": HostRunner(opts.rootfs),
            "container": ContainerRunner(opts.rootfs),
            "runc": RuncRunner(opts.rootfs),
            "runc_spec": RuncRunner(opts.rootfs, defaults="runc-spec") if opts.peer_defaults else None,
            "vm": VMRunner(opts.rootfs, opts.accel, say=self.say),
        }
        self.runners = {name: runners[name] for name in BACKENDS if runners[name] is not None}
        self.work = tempfile.mkdtemp(prefix="mrc-compare-")
        self.data: dict = {"backends": {}, "samples": {b: {} for b in self.runners}}

    def run(self) -> dict:
        try:
            return self._run()
        finally:
            for runner in self.runners.values():
                if hasattr(runner, "cleanup"):
                    runner.cleanup()
            shutil.rmtree(self.work, ignore_errors=True)

    def _run(self) -> dict:
        opts = self.opts
        self.say("checking the backends (QEMU, accelerator, kernel, runc)")
        for name, runner in self.runners.items():
            reason = runner.unavailable()
            self.data["backends"][name] = {"label": runner.label, "available": reason is None, "reason": reason,
                                           "settings": runner.settings()}
        vm, runc, host = self.runners["vm"], self.runners["runc"], self.runners["host"]
        self.data["environment"] = environment(opts, vm, runc, host)
        self.data["options"] = {"rootfs": os.path.abspath(opts.rootfs), "runs": opts.runs, "accel": opts.accel,
                                "containers": opts.containers, "vms": opts.vms, "store_mib": opts.store_mb,
                                "pings": opts.pings, "net_mib": opts.net_mb, "net_s": opts.net_s,
                                "peer_defaults": opts.peer_defaults}
        probe_dir, probe_note = build_probe_helper(self.work)
        self.data["probe_helper"] = {"available": probe_dir is not None, "note": probe_note}
        evidence = HostEvidence(host.busybox)
        try:
            self.data["host_evidence"] = {"token_pid": evidence.proc.pid, "file": evidence.file,
                                          "hostname": evidence.hostname, "macs": evidence.macs,
                                          "boot_id": evidence.boot_id}
            peer = self._start_peer()
            try:
                self._suites(evidence, probe_dir)
            finally:
                self._stop_peer(peer)
        finally:
            evidence.close()
        self._performance()
        self._deployment()
        self._density()
        self._disk()
        self.data["environment"]["loadavg_end"] = [float(x) for x in _read("/proc/loadavg", "0 0 0").split()[:3]]
        self.data["schema"] = SCHEMA_ID
        return self.data

    def available(self, name: str) -> bool:
        return self.data["backends"][name]["available"]

    # -- suites --------------------------------------------------------------------------------

    def _env(self, name: str, evidence: HostEvidence, work: str, data: str, probe: str, gw: str = "") -> dict:
        bridged = bool(gw)
        return {
            "MRC_RUNS": str(self.opts.runs), "MRC_PAT": evidence.pattern, "MRC_FILE": evidence.file,
            "MRC_HOSTNAME": evidence.hostname if name == "host" else f"mrc-{name}-probe",
            "MRC_MNT": f"mrcmnt-{name}-{evidence.token[4:]}", "MRC_WORK": work, "MRC_DATA": data,
            "MRC_STORE_MB": str(self.opts.store_mb), "MRC_PINGS": str(self.opts.pings), "MRC_PING_GW": gw,
            "MRC_PEER": self.data.get("network_peer", {}).get("ip", "") if bridged else "",
            "MRC_TCP_PORT": str(TCP_PORT) if bridged else "", "MRC_TCP_WAIT": str(int(self.opts.net_s + 60)),
            "MRC_PROBE": probe, "MRC_SURVIVOR": f"{evidence.token}-{name}", "MRC_ESCAPES": "",
        }

    @staticmethod
    def _bridge_gateway() -> str:
        from ipaddress import IPv4Network

        from .. import network

        return str(next(IPv4Network(network.SUBNET).hosts()))

    def _start_peer(self) -> str | None:
        """A detached container idling on the bridge: what the container and the VM each ping ("instance to
        instance"); the same peer for both, so the two figures differ only by the instance measured."""
        if not self.available("container"):
            return None
        name = f"mrc-peer-{os.urandom(3).hex()}"
        from .runners import minirun_argv

        proc = subprocess.run(minirun_argv() + ["run", "-d", "--name", name, "--network", "bridge", self.opts.rootfs,
                                                "/bin/sleep", "900"], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            self.data["network_peer"] = {"error": proc.stderr.strip()[-300:]}
            subprocess.run(minirun_argv() + ["rm", "-f", name], capture_output=True, timeout=60)
            return None
        from .. import lifecycle

        ip = (lifecycle.status(name).get("network") or {}).get("ip", "")
        self.data["network_peer"] = {"kind": "container", "ip": ip}
        return name

    def _stop_peer(self, name: str | None) -> None:
        if name:
            from .runners import minirun_argv

            subprocess.run(minirun_argv() + ["rm", "-f", name], capture_output=True, timeout=60)

    def _suites(self, evidence: HostEvidence, probe_dir: str | None) -> None:
        # minirun/probes.py's escape probes, filled in for this host (container and VM only)
        probes = escapes.rendered(escapes.context(evidence.token, evidence.file, evidence.port)) if probe_dir else []
        for name in self.runners:
            if not self.available(name):
                continue
            data_dir = tempfile.mkdtemp(prefix=f"mrc-data-{name}-", dir=self.work)
            kwargs: dict = {}
            if name == "host":
                scratch = tempfile.mkdtemp(prefix="mrc-scratch-", dir=self.work)
                env = self._env(name, evidence, scratch, data_dir,
                                os.path.join(probe_dir, "probe") if probe_dir else "")
            elif name == "container":
                env = self._env(name, evidence, "/tmp", "/data", CONTAINER_PROBE_PATH if probe_dir else "",
                                self._bridge_gateway())
                kwargs = {"data_dir": data_dir, "probe_dir": probe_dir}
            elif name in ("runc", "runc_spec"):
                from .runners import RUNC_DATA_DIR, RUNC_PROBE_DIR

                env = self._env(name, evidence, "/tmp", RUNC_DATA_DIR, RUNC_PROBE_DIR + "/probe" if probe_dir else "")
                kwargs = {"data_dir": data_dir, "probe_dir": probe_dir}
            else:
                vmroot = self._vm_root(probe_dir)
                env = self._env(name, evidence, "/tmp", "", CONTAINER_PROBE_PATH if probe_dir else "",
                                self._bridge_gateway())
                env["MRC_ESCAPES"] = escapes.env_value(probes)  # in the suite's one boot
                kwargs = {"rootfs": vmroot}
            self.say(f"{self.runners[name].label}: probes and workloads in one instance "
                     f"({self.opts.runs} runs of each workload)")
            checks: dict = {}
            bridge = BridgeWatcher(self.runners["host"].busybox, self.opts)
            run = self.runners[name].suite(units.SUITE, env,
                                           _both(evidence.watcher(checks, env["MRC_MNT"]), bridge.on_marker), **kwargs)
            bridge.join(checks)
            if name in ("container", "vm"):
                self.data["samples"][name]["escape_probes"] = self._escape_probes(name, run, probes, probe_dir)
            survivor = None if name == "vm" else os.path.join(data_dir, "mrc-survivor")
            evidence.after(checks, survivor, env["MRC_SURVIVOR"])
            if name == "host":
                evidence.unmount_leftovers()  # the host suite's mount, if it died before its cleanup unit
            self.data["samples"][name]["suite"] = self._suite_dict(run, checks)
            self._report_failure(run)
            if name == "vm":
                self._vm_storage(evidence, kwargs["rootfs"], data_dir)

    def _escape_probes(self, name: str, run: SuiteRun, probes: list[dict], probe_dir: str | None) -> dict:
        """Raw results of minirun/probes.py's escape probes: the VM's come from its suite's markers; the
        container's each from a container of its own (escapes.py says why). Before evidence.after(), so the
        host's checks (hostname, modules, boot_id) cover them too."""
        if not probe_dir:
            return {"ran": False, "reason": self.data["probe_helper"]["note"], "results": []}
        if name == "vm":
            results = escapes.from_markers(run.markers, probes)
            where = "inside the VM suite's one boot"
        else:
            self.say(f"{self.runners[name].label}: {len(probes)} escape probes (minirun/probes.py), "
                     f"one default container each")
            results = self.runners[name].escape_probes(probes, probe_dir)
            where = "one default container per probe, with the probe's own options"
        return {"ran": True, "where": where, "results": results}

    def _vm_root(self, probe_dir: str | None) -> str:
        """ROOTFS plus the probe helper and a /data directory: the VM suite's initramfs, then its 9p root."""
        root = os.path.join(self.work, "vmroot")
        shutil.copytree(self.opts.rootfs, root, symlinks=True)
        if probe_dir:
            os.makedirs(os.path.join(root, ".minirun-probe"), exist_ok=True)
            shutil.copy2(os.path.join(probe_dir, "probe"), os.path.join(root, ".minirun-probe", "probe"))
        os.makedirs(os.path.join(root, "data"), exist_ok=True)
        return root

    def _vm_storage(self, evidence: HostEvidence, vmroot: str, data_dir: str) -> None:
        self.say("minirun VM: storage through a 9p share (a second boot, -v HOSTDIR:/data)")
        env = self._env("vm", evidence, "/tmp", "/data", "")
        checks: dict = {}
        run = self.runners["vm"].suite(units.STORAGE_SUITE, env, rootfs=vmroot, shares=[(data_dir, "/data", False)],
                                       network="none")
        evidence.after(checks, os.path.join(data_dir, "mrc-survivor"), env["MRC_SURVIVOR"])
        self.data["samples"]["vm"]["storage_suite"] = self._suite_dict(run, checks)
        self._report_failure(run)

    @staticmethod
    def _suite_dict(run: SuiteRun, checks: dict) -> dict:
        return {"exit_code": run.exit_code, "wall_s": run.wall_s, "error": run.error, "meta": run.meta,
                "host_checks": checks, "markers": run.markers.to_list(),
                **({"output_tail": run.tail} if run.error or run.exit_code else {})}

    def _report_failure(self, run: SuiteRun) -> None:
        if run.error or run.exit_code:
            self.say(f"{self.runners[run.backend].label}: suite ended with "
                     f"{run.error or f'exit code {run.exit_code}'}")

    # -- performance ----------------------------------------------------------------------------

    def _performance(self) -> None:
        """The Performance row's samples for the host and the containers: the workloads once per instance, the
        columns alternated round by round (as the benchmarks alternate pairs), so load that drifts on a shared
        machine weighs on every column alike instead of on whichever suite ran during it. The VM keeps its
        suite's samples (one boot; under TCG its ratios measure emulation)."""
        names = [n for n in self.runners if n != "vm" and self.available(n)]
        self.say(f"performance: the workloads in one instance each, {', '.join(names)} alternated, "
                 f"{self.opts.runs} rounds")
        pooled: dict[str, list] = {n: [] for n in names}
        for i in range(self.opts.runs):
            for name in names if i % 2 == 0 else names[::-1]:
                run = self.runners[name].suite(units.PERF_SUITE, {"MRC_RUNS": "1"})
                pooled[name] += run.markers.to_list()
                self._report_failure(run)
        for name in names:
            self.data["samples"][name]["perf"] = {"rounds": self.opts.runs, "markers": pooled[name]}

    # -- deployment -----------------------------------------------------------------------------

    def _deployment(self) -> None:
        names = [n for n in self.runners if self.available(n)]
        self.say(f"deployment: `echo up` and `true` through {', '.join(names)}, {self.opts.runs} runs each, "
                 f"interleaved")
        samples: dict[str, dict[str, list]] = {n: {"echo": [], "true": []} for n in names}
        for i in range(self.opts.runs):
            for name in names:
                cmds = self.runners[name].commands()
                samples[name]["echo"].append(timed_command(cmds["echo"], wait_for=b"up"))
                samples[name]["true"].append(timed_command(cmds["true"]))
            self.say(f"deployment: run {i + 1}/{self.opts.runs} done")
        for name in names:
            self.data["samples"][name]["deploy"] = samples[name]
            failed = [s for kind in ("echo", "true") for s in samples[name][kind] if s["exit_code"] != 0]
            if failed:
                self.say(f"{self.runners[name].label}: {len(failed)} deployment runs failed: {failed[0].get('error')}")

    # -- density ----------------------------------------------------------------------------------

    def _density(self) -> None:
        tag = os.urandom(3).hex()
        for name in self.runners:
            k = self.opts.vms if name == "vm" else self.opts.containers
            if name == "host" or not self.available(name) or k <= 0:
                continue
            runner = self.runners[name]
            self.say(f"density: {k} idle {runner.label} instances at once")
            handles = None
            entry: dict = {"k": k}
            try:
                handles, elapsed = runner.start_idle(k, tag)
                entry["start_all_s"] = elapsed
                time.sleep(1.0)  # let them settle into idleness
                entry["instances"] = runner.idle_memory(handles)
                entry["mem_available_bytes"] = meminfo().get("MemAvailable", 0)
            except Exception as err:  # one backend's density failure must not lose the rest
                entry["error"] = str(err)
                self.say(f"density: {runner.label}: {err}")
            finally:
                if handles is not None:
                    runner.stop_idle(handles)
            self.data["samples"][name]["density"] = entry

    # -- disk -------------------------------------------------------------------------------------

    def _disk(self) -> None:
        rootfs = tree_bytes(self.opts.rootfs)
        disk = {"rootfs_bytes": rootfs}
        plan = self.runners["vm"].plan
        if plan is not None:
            disk["kernel_bytes"] = os.path.getsize(plan.kernel.image)
            disk["initramfs_bytes"] = sum(map(os.path.getsize, plan.base_images)) + len(plan.overlay)
        self.data["disk"] = disk


def measure(opts: Options, progress: Callable[[str], None] | None = None) -> dict:
    return Measurement(opts, progress).run()
