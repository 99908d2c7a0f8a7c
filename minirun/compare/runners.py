"""Running units, timed commands and idle instances on each backend.

    host       ROOTFS/bin/busybox sh -c SUITE, as a plain process (the baseline runs the same binary)
    container  minirun.container.run() (bridge network, the shared directory as a -v bind mount)
    runc       `runc run` on a bundle from `runc spec` with minirun's default security
               (oci.defaults.with_minirun_defaults), pointed at the same ROOTFS
    runc_spec  (--peer-defaults) the same bundle with `runc spec`'s own security
    vm         minirun.vm.run() (same ROOTFS as an initramfs, on the same bridge; the shared directory as a 9p -v share)

Every backend has the same three verbs: :meth:`suite` (one instance runs a unit
script; marker lines are handed to ``on_marker`` as they arrive, so the host can
check its own state while the instance still runs), :meth:`commands` (the argv
of a user-level `true` and `echo up`, for the deployment samples) and
:meth:`start_idle`/:meth:`idle_memory`/:meth:`stop_idle` (density).  A backend
that cannot run says why through :meth:`unavailable`, and :meth:`settings` says what security it runs
with (seccomp profile, capabilities, no_new_privs, masked paths) and on which accelerator.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .units import Marker, Markers, parse_line, suite_script

OnMarker = Callable[[Marker], None]


@dataclass
class SuiteRun:
    backend: str
    markers: Markers
    exit_code: int | None = None
    wall_s: float = 0.0
    meta: dict = field(default_factory=dict)
    error: str | None = None
    tail: str = ""  # last lines of output, for error reports


class LineSink:
    """Bytes in, marker callbacks out (with the host's arrival time); keeps a tail of the text."""

    def __init__(self, on_marker: OnMarker | None = None):
        self.on_marker = on_marker
        self.buf = b""
        self.markers: list[Marker] = []
        self.tail: list[str] = []

    def feed(self, chunk: bytes) -> None:
        now = time.monotonic()
        self.buf += chunk
        *lines, self.buf = self.buf.split(b"\n")
        for raw in lines:
            self._line(raw.decode(errors="replace"), now)

    def close(self) -> None:
        if self.buf:
            self._line(self.buf.decode(errors="replace"), time.monotonic())
            self.buf = b""

    def _line(self, line: str, now: float) -> None:
        self.tail = (self.tail + [line])[-40:]
        marker = parse_line(line, now)
        if marker is None:
            return
        self.markers.append(marker)
        if self.on_marker:
            try:
                self.on_marker(marker)
            except Exception as err:  # a host check must not kill the reader
                self.tail.append(f"host check failed: {err!r}")

    def text_tail(self) -> str:
        return "\n".join(self.tail[-20:])


def _pump(fd: int, sink: LineSink) -> threading.Thread:
    def run():
        with os.fdopen(fd, "rb", buffering=0) as f:
            while chunk := f.read(65536):
                sink.feed(chunk)
        sink.close()

    t = threading.Thread(target=run, name="compare-reader", daemon=True)
    t.start()
    return t


def rss_kib(pid: int) -> dict:
    """VmRSS and VmHWM from /proc/PID/status, and Pss from smaps_rollup (KiB); {} if the process is gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0].lower()] = int(line.split()[1])
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    out["pss"] = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return out


def children_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            out.append(int(entry))
    return out


def minirun_argv() -> list[str]:
    """How a user starts minirun: the venv's entry script if there is one, else ``python -m minirun``."""
    entry = shutil.which("minirun", path=os.path.dirname(sys.executable))
    return [entry] if entry else [sys.executable, "-m", "minirun"]


def _env_list(env: dict[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in env.items()]


SECCOMP_DEFAULT = "minirun default"  # Docker's profile as minirun ships it (minirun/seccomp_default.py)


def settings(*, seccomp: str, caps, nnp: bool | None, masked=(), readonly=(), accel: str | None = None,
             note: str = "") -> dict:
    """What a column runs with, as the report shows it: ``seccomp`` names the profile ("none" when unfiltered)."""
    return {"seccomp": seccomp, "capabilities": sorted(caps), "no_new_privileges": nnp, "masked_paths": list(masked),
            "readonly_paths": list(readonly), "accelerator": accel, "note": note}


def _all_caps() -> list[str]:
    from ..security import ALL_CAPS

    return list(ALL_CAPS)


# ---------------------------------------------------------------------------------------------- host


class HostRunner:
    name = "host"
    label = "Host"

    def __init__(self, rootfs: str):
        self.rootfs = rootfs
        self.busybox = os.path.join(rootfs, "bin", "busybox")
        bins = [os.path.join(rootfs, d) for d in ("bin", "sbin", "usr/bin", "usr/sbin")]
        self.path = ":".join(bins)

    def unavailable(self) -> str | None:
        return None if os.access(self.busybox, os.X_OK) else f"{self.busybox} is missing"

    def suite(self, names, env: dict[str, str], on_marker: OnMarker | None = None, **_) -> SuiteRun:
        sink = LineSink(on_marker)
        t0 = time.perf_counter()
        proc = subprocess.Popen([self.busybox, "sh", "-c", suite_script(names)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env={"PATH": self.path, "HOME": "/root", **env})
        while chunk := proc.stdout.read1(65536):
            sink.feed(chunk)
        sink.close()
        code = proc.wait()
        return SuiteRun(self.name, Markers(sink.markers), code, time.perf_counter() - t0, tail=sink.text_tail())

    def commands(self) -> dict[str, list[str]]:
        return {"true": [self.busybox, "true"], "echo": [self.busybox, "echo", "up"]}

    def settings(self) -> dict:
        """This process's own (the suite inherits them), from /proc/self/status."""
        from ..security import caps_of_mask

        status = {}
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                status[key] = value.strip()
        return settings(seccomp="none" if status.get("Seccomp", "0") == "0" else "the caller's",
                        caps=caps_of_mask(int(status.get("CapEff", "0"), 16)), nnp=status.get("NoNewPrivs") == "1",
                        note="a plain child of `minirun compare` on the host")

    def version(self) -> str:
        out = subprocess.run([self.busybox], capture_output=True, text=True).stdout
        return out.splitlines()[0] if out else ""


# ---------------------------------------------------------------------------------------------- minirun container


class ContainerRunner:
    name = "container"
    label = "minirun container"

    def __init__(self, rootfs: str):
        self.rootfs = rootfs
        self.network = "bridge"

    def unavailable(self) -> str | None:
        if os.geteuid() != 0:
            return "minirun containers need root"
        return None

    def suite(self, names, env: dict[str, str], on_marker: OnMarker | None = None, *, data_dir: str | None = None,
              probe_dir: str | None = None, **_) -> SuiteRun:
        from .. import container
        from ..errors import MiniRunError
        from ..spec import parse_volume

        mounts = []
        if data_dir:
            mounts.append(parse_volume(f"{data_dir}:/data"))
        if probe_dir:
            mounts.append(parse_volume(f"{probe_dir}:/.minirun-probe:ro"))
        sink = LineSink(on_marker)
        r, w = os.pipe()
        reader = _pump(r, sink)
        devnull = os.open(os.devnull, os.O_RDONLY)
        t0 = time.perf_counter()
        run = SuiteRun(self.name, Markers([]))
        try:
            spec = self.spec(["/bin/sh", "-c", suite_script(names)], env, mounts)
            try:
                result = container.run(spec, stdio=(devnull, w, w))
                run.exit_code = result.exit_code
                run.meta = {"timings": result.timings, "stats": result.stats, "network": self.network}
            except MiniRunError as err:
                run.error = str(err)
        finally:
            os.close(w)
            os.close(devnull)
            reader.join(30)
        run.wall_s = time.perf_counter() - t0
        run.markers, run.tail = Markers(sink.markers), sink.text_tail()
        return run

    def spec(self, args: list[str], env: dict[str, str] | None = None, mounts=()):
        """The suite's container: minirun's defaults, on the bridge."""
        from ..spec import ContainerSpec, Process

        return ContainerSpec(rootfs=self.rootfs, process=Process(list(args), env=_env_list(env or {})),
                             mounts=list(mounts), network=self.network)

    def settings(self) -> dict:
        spec = self.spec(["/bin/true"])
        seccomp = {"default": SECCOMP_DEFAULT, None: "none"}.get(spec.seccomp, "custom")
        return settings(seccomp=seccomp, caps=spec.process.capabilities, nnp=spec.process.no_new_privileges,
                        masked=spec.masked_paths, readonly=spec.readonly_paths, note="minirun's defaults")

    def commands(self) -> dict[str, list[str]]:
        base = minirun_argv() + ["run"]
        return {"true": base + [self.rootfs, "/bin/true"], "echo": base + [self.rootfs, "/bin/echo", "up"]}

    def escape_probes(self, probes: list[dict], probe_dir: str) -> list[dict]:
        """Each escape probe in its own default container (plus the probe's own options), as the escape suite
        runs them: `minirun run -v PROBE_DIR:/.minirun-probe:ro [options] ROOTFS HELPER ARGS`."""
        out = []
        for p in probes:
            argv = minirun_argv() + ["run", "-v", f"{probe_dir}:/.minirun-probe:ro", *p["options"], self.rootfs,
                                     *p["argv"]]
            try:
                proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
                code, text = proc.returncode, (proc.stdout + proc.stderr).strip()
            except subprocess.TimeoutExpired:
                code, text = None, "timed out after 60 s"
            out.append({"probe": p["probe"], "argv": p["argv"], "options": p["options"], "exit_code": code,
                        "output": " ".join(text.split())[-300:], "where": "own container"})
        return out

    # density: `minirun run -d` as a user would start them; the supervisor is a fork of that fresh process
    def start_idle(self, k: int, tag: str) -> tuple[list[str], float]:
        names = [f"mrc-{tag}-c{i}" for i in range(k)]
        t0 = time.perf_counter()
        procs = [subprocess.Popen(minirun_argv() + ["run", "-d", "--name", n, self.rootfs, "/bin/sleep", "3600"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in names]
        errors = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            if p.returncode != 0:
                errors.append(err.strip() or out.strip())
        elapsed = time.perf_counter() - t0
        if errors:
            self.stop_idle(names)
            raise RuntimeError(f"minirun run -d failed: {errors[0]}")
        return names, elapsed

    def idle_memory(self, names: list[str]) -> list[dict]:
        from .. import cgroups, lifecycle

        out = []
        for name in names:
            st = lifecycle.status(name)
            supervisor = rss_kib(st.get("owner") or 0)
            init = rss_kib(st.get("pid") or 0)
            cg = cgroups.existing(name).memory_usage()
            out.append({"id": name, "supervisor_rss_kib": supervisor.get("vmrss"),
                        "supervisor_pss_kib": supervisor.get("pss"), "init_rss_kib": init.get("vmrss"),
                        "cgroup_memory_bytes": cg,
                        "total_bytes": (supervisor.get("vmrss", 0) << 10) + (cg or 0)})
        return out

    def stop_idle(self, names: list[str]) -> None:
        from .. import lifecycle
        from ..errors import MiniRunError

        for name in names:
            try:
                lifecycle.remove(name, force=True)
            except MiniRunError:
                pass


# ---------------------------------------------------------------------------------------------- runc


RUNC_PROBE_DIR = "/tmp/mrc-probe"  # under the bundle's /tmp tmpfs: runc never creates mount points in ROOTFS
RUNC_DATA_DIR = "/tmp/mrc-data"


class RuncRunner:
    """runc on a bundle from `runc spec` pointed at the same ROOTFS, plus a cgroup namespace, a tmpfs /tmp and the
    bind mounts the units need. Its security is minirun's default container's (``defaults="minirun"``: the same
    seccomp profile, capabilities, no_new_privs, masked and read-only paths, oci.defaults.with_minirun_defaults),
    so the rows compare runtimes, not policies; or runc's own (``defaults="runc-spec"``, `--peer-defaults`: no
    seccomp, 3 capabilities, plus CAP_NET_RAW for ping)."""

    def __init__(self, rootfs: str, defaults: str = "minirun"):
        assert defaults in ("minirun", "runc-spec")
        self.rootfs = os.path.abspath(rootfs)
        self.defaults = defaults
        self.name = "runc" if defaults == "minirun" else "runc_spec"
        self.label = "runc" if defaults == "minirun" else "runc (runc spec defaults)"
        self.tag = "r" if defaults == "minirun" else "s"  # in container ids, so the two columns never collide
        self.binary = shutil.which("runc")
        self.state = f"/run/mrc-{self.name.replace('_', '-')}-{os.getpid()}"
        self._bundles: list[str] = []
        self._seq = 0
        self._spec: dict | None = None

    def unavailable(self) -> str | None:
        if not self.binary:
            return "runc is not installed (Debian package runc)"
        return None

    def version(self) -> str:
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True).stdout
        return out.splitlines()[0].replace("runc version ", "") if out else ""

    def config(self, args: list[str], env: dict[str, str] | None = None, binds: list[tuple[str, str, bool]] = ()
               ) -> dict:
        """The config.json of a bundle running ``args``."""
        if self._spec is None:
            with tempfile.TemporaryDirectory(prefix="mrc-runc-spec-") as tmp:
                subprocess.run([self.binary, "spec", "--bundle", tmp], check=True)
                with open(os.path.join(tmp, "config.json")) as f:
                    self._spec = json.load(f)
        config = json.loads(json.dumps(self._spec))
        if self.defaults == "minirun":
            from ..oci.defaults import with_minirun_defaults

            config = with_minirun_defaults(config)
        config["root"] = {"path": self.rootfs, "readonly": True}
        proc = config["process"]
        proc["args"] = list(args)
        proc["terminal"] = False
        proc["env"] = proc.get("env", []) + _env_list(env or {})
        if self.defaults == "runc-spec":  # ping needs it; minirun's set has it
            for kind in ("bounding", "effective", "permitted"):
                proc["capabilities"][kind] = sorted(set(proc["capabilities"].get(kind, [])) | {"CAP_NET_RAW"})
        config["hostname"] = "runc"
        mounts = [{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                   "options": ["nosuid", "nodev", "mode=1777", "size=256m"]}]
        for src, dst, ro in binds:
            mounts.append({"destination": dst, "type": "bind", "source": src,
                           "options": ["rbind", "ro" if ro else "rw"]})
        config["mounts"] += mounts
        linux = config["linux"]
        if "cgroup" not in {ns["type"] for ns in linux["namespaces"]}:
            linux["namespaces"].append({"type": "cgroup"})
        return config

    def bundle(self, args: list[str], env: dict[str, str] | None = None, binds: list[tuple[str, str, bool]] = ()
               ) -> str:
        path = tempfile.mkdtemp(prefix="mrc-runc-bundle-")
        self._bundles.append(path)
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(self.config(args, env, binds), f)
        return path

    def settings(self) -> dict:
        """Read back from the config.json this runner writes."""
        if self.unavailable():
            return settings(seccomp="?", caps=(), nnp=None, note=self.unavailable())
        config = self.config(["/bin/true"])
        proc, linux = config["process"], config["linux"]
        caps = proc["capabilities"].get("bounding", [])
        profile = linux.get("seccomp")
        if not profile:
            seccomp = "none"
        else:
            from ..seccomp_build import to_oci

            seccomp = SECCOMP_DEFAULT if profile == to_oci("default", caps) else "custom"
        note = ("config.json from minirun's defaults (oci.defaults.with_minirun_defaults)" if self.defaults == "minirun"
                else "`runc spec` defaults, plus CAP_NET_RAW for ping")
        return settings(seccomp=seccomp, caps=caps, nnp=bool(proc.get("noNewPrivileges")),
                        masked=linux.get("maskedPaths", ()), readonly=linux.get("readonlyPaths", ()), note=note)

    def _id(self, prefix: str) -> str:
        self._seq += 1
        return f"mrc-{prefix}-{self.tag}{os.getpid()}-{self._seq}"

    def run_argv(self, bundle: str, cid: str, detach: bool = False) -> list[str]:
        return [self.binary, "--root", self.state, "run", *(["-d"] if detach else []), "--bundle", bundle, cid]

    def suite(self, names, env: dict[str, str], on_marker: OnMarker | None = None, *, data_dir: str | None = None,
              probe_dir: str | None = None, **_) -> SuiteRun:
        binds = []
        if data_dir:
            binds.append((data_dir, RUNC_DATA_DIR, False))
        if probe_dir:
            binds.append((probe_dir, RUNC_PROBE_DIR, True))
        bundle = self.bundle(["/bin/sh", "-c", suite_script(names)], env, binds)
        sink = LineSink(on_marker)
        t0 = time.perf_counter()
        proc = subprocess.Popen(self.run_argv(bundle, self._id("suite")), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        while chunk := proc.stdout.read1(65536):
            sink.feed(chunk)
        sink.close()
        code = proc.wait()
        run = SuiteRun(self.name, Markers(sink.markers), code, time.perf_counter() - t0, tail=sink.text_tail())
        if code != 0 and not sink.markers:
            run.error = f"runc run exited {code}: {sink.text_tail()[-300:]}"
        return run

    def commands(self) -> dict[str, list[str]]:
        """Each call gives fresh container ids (runc refuses to reuse a live one)."""
        true_b = getattr(self, "_true_bundle", None) or self.bundle(["/bin/true"])
        echo_b = getattr(self, "_echo_bundle", None) or self.bundle(["/bin/echo", "up"])
        self._true_bundle, self._echo_bundle = true_b, echo_b
        return {"true": self.run_argv(true_b, self._id("true")), "echo": self.run_argv(echo_b, self._id("echo"))}

    def start_idle(self, k: int, tag: str) -> tuple[list[str], float]:
        config = self.config(["/bin/sleep", "3600"])
        names = [f"mrc-{tag}-{self.tag}{i}" for i in range(k)]
        t0 = time.perf_counter()
        procs = []
        for name in names:
            config["linux"]["cgroupsPath"] = f"/{name}"
            b = tempfile.mkdtemp(prefix="mrc-runc-bundle-")  # one bundle per container: runc reads config.json
            self._bundles.append(b)
            with open(os.path.join(b, "config.json"), "w") as f:
                json.dump(config, f)
            # The detached container inherits runc's stdio: a pipe would never see EOF, so stderr goes to a file.
            err = open(os.path.join(b, "stderr"), "w+")
            procs.append((subprocess.Popen(self.run_argv(b, name, detach=True), stdin=subprocess.DEVNULL,
                                           stdout=subprocess.DEVNULL, stderr=err), err))
        errors = []
        for p, err in procs:
            with err:
                if p.wait(120) != 0:
                    err.seek(0)
                    errors.append(err.read().strip())
        elapsed = time.perf_counter() - t0
        if errors:
            self.stop_idle(names)
            raise RuntimeError(f"runc run -d failed: {errors[0]}")
        return names, elapsed

    def idle_memory(self, names: list[str]) -> list[dict]:
        out = []
        for name in names:
            usage = None
            for path in (f"/sys/fs/cgroup/memory/{name}/memory.usage_in_bytes", f"/sys/fs/cgroup/{name}/memory.current"):
                try:
                    with open(path) as f:
                        usage = int(f.read())
                    break
                except (OSError, ValueError):
                    continue
            out.append({"id": name, "cgroup_memory_bytes": usage, "supervisor_rss_kib": 0, "total_bytes": usage or 0})
        return out

    def stop_idle(self, names: list[str]) -> None:
        for name in names:
            subprocess.run([self.binary, "--root", self.state, "delete", "-f", name], capture_output=True)

    def cleanup(self) -> None:
        for b in self._bundles:
            shutil.rmtree(b, ignore_errors=True)
        self._bundles = []
        if os.path.isdir(self.state):
            listing = subprocess.run([self.binary, "--root", self.state, "list", "-q"], capture_output=True, text=True)
            for cid in listing.stdout.split():
                subprocess.run([self.binary, "--root", self.state, "delete", "-f", cid], capture_output=True)
            shutil.rmtree(self.state, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- VM


class VMRunner:
    """minirun.vm on the same ROOTFS (or a copy of it with the probe helper), one boot per suite."""

    name = "vm"
    label = "minirun VM"

    def __init__(self, rootfs: str, accel: str = "auto", say: Callable[[str], None] | None = None):
        self.rootfs = rootfs
        self.accel = accel
        self.network = "bridge"  # the containers' bridge, so the Networking row compares like with like
        self.say = say or (lambda m: None)
        self.plan = None
        self._reason: str | None = None

    def unavailable(self) -> str | None:
        """None when QEMU, the accelerator and a kernel are there (builds the initramfs once, boots nothing)."""
        if self.plan is None and self._reason is None:
            from ..errors import MiniRunError
            from ..vm.runner import VMSpec, prepare

            try:
                self.plan = prepare(VMSpec(rootfs=self.rootfs, args=["/bin/true"], accel=self.accel))
            except MiniRunError as err:
                self._reason = str(err)
            except ImportError as err:
                self._reason = f"the VM companion cannot be imported: {err}"
        return self._reason

    def suite(self, names, env: dict[str, str], on_marker: OnMarker | None = None, *,
              rootfs: str | None = None, shares: list[tuple[str, str, bool]] = (), network: str | None = None,
              **_) -> SuiteRun:
        from ..errors import MiniRunError
        from ..vm.runner import VMSpec, run

        sink = LineSink(on_marker)
        spec = VMSpec(rootfs=rootfs or self.rootfs, args=["/bin/sh", "-c", suite_script(names)],
                      env=_env_list(env), accel=self.accel, shares=list(shares), network=network or self.network,
                      hostname="minirun-vm", timeout=600)
        t0 = time.perf_counter()
        out = SuiteRun(self.name, Markers([]))
        try:
            result = run(spec, stdout=sink.feed, say=lambda m: self.say(f"vm: {m}"))
            out.exit_code = result.exit_code
            out.meta = {"accel": result.accel, "accel_reason": result.accel_reason,
                        "kernel_version": result.kernel_version, "kernel": result.kernel,
                        "qemu_version": result.qemu_version, "qemu_peak_rss": result.qemu_peak_rss,
                        "timings": result.timings, "machine": result.machine, "shares": len(shares),
                        "network": result.network}
        except MiniRunError as err:
            out.error = str(err)
        sink.close()
        out.wall_s = time.perf_counter() - t0
        out.markers, out.tail = Markers(sink.markers), sink.text_tail()
        return out

    def settings(self) -> dict:
        accel = self.plan.accel.name if self.plan is not None else None
        return settings(seccomp="none", caps=_all_caps(), nnp=False, accel=accel,
                        note="root in the guest, under its own kernel")

    def commands(self) -> dict[str, list[str]]:
        base = minirun_argv() + ["vm", "run", "--accel", self.accel]
        return {"true": base + [self.rootfs, "/bin/true"], "echo": base + [self.rootfs, "/bin/echo", "up"]}

    def start_idle(self, k: int, tag: str) -> tuple[list[subprocess.Popen], float]:
        """k `minirun vm run` processes at once; returns once every guest printed that it is idle."""
        names = [f"mrc-{tag}-v{i}" for i in range(k)]
        ready = [threading.Event() for _ in names]
        t0 = time.perf_counter()
        procs = []
        for name, event in zip(names, ready):
            p = subprocess.Popen(minirun_argv() + ["vm", "run", "--accel", self.accel, "--name", name, self.rootfs,
                                                   "/bin/sh", "-c", "echo mrc-idle; exec sleep 3600"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            p.mrc_name = name  # type: ignore[attr-defined]
            procs.append(p)

            def watch(p=p, event=event):
                for line in p.stdout:
                    if b"mrc-idle" in line:
                        event.set()
                event.set()  # EOF: it ended, ready or not

            threading.Thread(target=watch, daemon=True).start()
        try:
            for p, event in zip(procs, ready):
                if not event.wait(180) or p.poll() is not None:
                    err = p.stderr.read().decode(errors="replace") if p.poll() is not None else "timed out"
                    raise RuntimeError(f"VM {p.mrc_name} did not reach its workload: {err.strip()[-300:]}")
        except BaseException:
            self.stop_idle(procs)
            raise
        return procs, time.perf_counter() - t0

    def idle_memory(self, procs: list[subprocess.Popen]) -> list[dict]:
        out = []
        for p in procs:
            qemu = [c for c in children_of(p.pid) if _is_qemu(c)]
            q = rss_kib(qemu[0]) if qemu else {}
            wrapper = rss_kib(p.pid)
            out.append({"id": p.mrc_name, "qemu_rss_kib": q.get("vmrss"), "qemu_pss_kib": q.get("pss"),
                        "qemu_hwm_kib": q.get("vmhwm"), "wrapper_rss_kib": wrapper.get("vmrss"),
                        "total_bytes": (q.get("vmrss") or 0) << 10})
        return out

    def stop_idle(self, procs: list[subprocess.Popen]) -> None:
        """SIGTERM to each `minirun vm run` we started: it stops its QEMU and cleans up (exit 143)."""
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()  # QEMU dies with it (PR_SET_PDEATHSIG)
                p.wait()
            for stream in (p.stdout, p.stderr):
                if stream:
                    stream.close()


def _is_qemu(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"qemu-system" in f.read().split(b"\0")[0]
    except OSError:
        return False
