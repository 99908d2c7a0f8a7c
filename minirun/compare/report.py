"""From raw measurements to the table: rows, terminal text, markdown, JSON.

Layout follows the explainer's table: Area | Virtualization | Containerization,
plus runc (a peer container runtime, with minirun's default security settings),
with --peer-defaults runc with `runc spec`'s own, and the host (the baseline the
ratios use). Each cell is a few short lines plus the values behind them
(``values``), and says why when its backend could not run. Each column's header
carries its security settings and accelerator in short; the lines under the
table give them in full, with what the instance itself reported.
"""

from __future__ import annotations

import json
import shutil
import statistics
import textwrap

from . import escapes
from .units import Markers, parse_addr, parse_rtt

COLUMNS = ("vm", "container", "runc", "host")  # always there (measured, or saying why not)
ALL_COLUMNS = ("vm", "container", "runc", "runc_spec", "host")  # runc_spec: --peer-defaults
AREAS = ("Isolation", "Operating system", "Guest compatibility", "Deployment", "Persistent storage",
         "Load balancing / density", "Networking", "Performance")
PROBES = ("host processes visible", "host network interfaces visible", "host files reachable",
          "can change the host's hostname", "can mount (on the host)", "can load a kernel module or reboot the host")


def columns(data: dict) -> tuple[str, ...]:
    return tuple(c for c in ALL_COLUMNS if c in COLUMNS or c in (data.get("backends") or {}))


def column_names(data: dict) -> dict[str, str]:
    accel = (data.get("environment") or {}).get("accel") or {}
    vm = "Virtualization (minirun VM" + (f", QEMU {accel['name'].upper()})" if accel else ")")
    return {"vm": vm, "container": "Containerization (minirun)", "runc": "runc (peer runtime, minirun's settings)",
            "runc_spec": "runc (peer runtime, runc spec defaults)", "host": "Host (baseline)"}


def column_titles(data: dict) -> dict[str, list[str]]:
    """Each column's header: its name, then its settings in short."""
    names = column_names(data)
    return {c: [names[c]] + ([tag] if (tag := settings_tag(_settings(data, c))) else []) for c in columns(data)}


def _settings(data: dict, col: str) -> dict | None:
    return ((data.get("backends") or {}).get(col) or {}).get("settings")


def _caps_text(caps: list[str], short: bool) -> str:
    from ..security import ALL_CAPS

    if len(caps) >= len(ALL_CAPS):
        return "all caps" if short else "all capabilities"
    if short or len(caps) > 5:
        return f"{len(caps)} caps" if short else f"{len(caps)} capabilities"
    return f"{len(caps)} capabilities ({', '.join(c.removeprefix('CAP_') for c in caps)})"


def settings_tag(st: dict | None) -> str:
    """"seccomp: minirun default, 14 caps, nnp" (and the accelerator first, for a VM)."""
    if not st:
        return ""
    seccomp = "no seccomp" if st.get("seccomp") == "none" else f"seccomp: {st.get('seccomp')}"
    nnp = {True: "nnp", False: "no nnp"}.get(st.get("no_new_privileges"), "nnp ?")
    accel = f"{st['accelerator'].upper()}; " if st.get("accelerator") else ""
    return f"{accel}{seccomp}, {_caps_text(st.get('capabilities') or [], True)}, {nnp}"


def settings_lines(data: dict) -> list[str]:
    """One line per column: its security settings and accelerator, and what its instance reported
    (/proc/self/status: Seccomp, NoNewPrivs, CapEff)."""
    names = column_names(data)
    out = []
    for col in columns(data):
        st = _settings(data, col)
        if not st:
            continue
        parts = []
        if col == "vm":
            accel = (data.get("environment") or {}).get("accel") or {}
            parts.append(f"accelerator {(st.get('accelerator') or 'n/a').upper()}"
                         + (f" ({accel['reason']})" if accel.get("reason") else ""))
        seccomp = st.get("seccomp")
        parts.append("no seccomp filter" if seccomp == "none" else
                     "seccomp: minirun's default profile (Docker's, minirun/seccomp_default.py)"
                     if seccomp == "minirun default" else f"seccomp: {seccomp}")
        parts.append(_caps_text(st.get("capabilities") or [], False))
        parts.append({True: "no_new_privs on", False: "no_new_privs off"}.get(st.get("no_new_privileges"),
                                                                              "no_new_privs ?"))
        if st.get("masked_paths") or st.get("readonly_paths"):
            parts.append(f"{len(st.get('masked_paths') or [])} masked and {len(st.get('readonly_paths') or [])} "
                         f"read-only paths")
        if st.get("note"):
            parts.append(st["note"])
        seen = View(col, data).markers
        status = [(label, seen.first("kernel", key)) for label, key in
                  (("Seccomp", "seccomp"), ("NoNewPrivs", "nnp"), ("CapEff", "capeff"))]
        status = [f"{label} {value}" for label, value in status if value]
        line = f"{names[col]}: " + "; ".join(parts)
        out.append(line + (f"; seen inside: {', '.join(status)}" if status else ""))
    return out


# ---------------------------------------------------------------------------------------------- formatting


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds >= 10:
        return f"{seconds:.1f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.3g} ms" if seconds * 1000 < 10 else f"{seconds * 1000:.0f} ms"


def mib(nbytes: float | None) -> str:
    if nbytes is None:
        return "?"
    return f"{nbytes / (1 << 20):.1f} MiB" if nbytes < 100 << 20 else f"{nbytes / (1 << 20):.0f} MiB"


def spread(st: dict | None, fmt=ms) -> str:
    """"median (min-max, n=N)"."""
    if not st:
        return "no samples"
    if st["n"] == 1:
        return f"{fmt(st['median'])} (n=1)"
    return f"{fmt(st['median'])} ({fmt(st['min'])}-{fmt(st['max'])}, n={st['n']})"


def _stats(samples: list[float]) -> dict | None:
    samples = [s for s in samples if s is not None]
    if not samples:
        return None
    return {"n": len(samples), "median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def cell(lines: list[str], status: str = "measured", **values) -> dict:
    return {"status": status, "text": lines, "values": values}


def unavailable(reason: str) -> dict:
    return cell([f"not measured: {reason}"], "unavailable", reason=reason)


# ---------------------------------------------------------------------------------------------- per-backend views


class View:
    """One backend's raw data with the derived figures the rows share."""

    def __init__(self, name: str, data: dict):
        self.name = name
        self.data = data
        self.info = data["backends"].get(name, {"available": False, "reason": "not run"})
        self.raw = data["samples"].get(name, {})
        suite = self.raw.get("suite") or {}
        self.suite = suite
        self.markers = Markers([_marker(m) for m in suite.get("markers", [])])
        perf = self.raw.get("perf")  # alternated rounds (measure._performance); else the suite's own samples
        self.perf_markers = Markers([_marker(m) for m in perf["markers"]]) if perf else self.markers
        self.checks = suite.get("host_checks", {})
        self.runs = data.get("options", {}).get("runs")
        self.kind = "runc" if name.startswith("runc") else name  # both runc columns are measured alike
        accel = (suite.get("meta") or {}).get("accel") or ((data.get("environment") or {}).get("accel") or {}).get(
            "name")
        self.accel = accel if name == "vm" else None

    @property
    def available(self) -> bool:
        return bool(self.info.get("available"))

    @property
    def reason(self) -> str:
        return self.info.get("reason") or "not run"

    @property
    def suite_ok(self) -> bool:
        return bool(self.suite) and not self.suite.get("error") and self.markers.ran("cleanup")

    def suite_problem(self) -> str:
        if not self.suite:
            return "the suite did not run"
        return self.suite.get("error") or f"the suite stopped early (exit {self.suite.get('exit_code')})"

    def tag(self) -> str:
        """Run count and, for the VM, the accelerator: carried by every figure."""
        return f"n={self.runs}" + (f", {self.accel}" if self.accel else "")

    def clock_overhead(self, markers: Markers | None = None) -> float:
        samples = (markers or self.markers).durations("clock")
        return statistics.median(samples) if samples else 0.0

    def workload(self, unit: str) -> dict | None:
        return _stats(self.perf_markers.durations(unit, self.clock_overhead(self.perf_markers)))

    def same_kernel_as_host(self) -> bool | None:
        host_boot = (self.data.get("host_evidence") or {}).get("boot_id")
        inside = self.markers.first("kernel", "boot_id")
        if not host_boot or not inside:
            return None
        return inside == host_boot


def _marker(d: dict):
    from .units import Marker

    return Marker(d["unit"], d["key"], d.get("value", ""), d.get("at"))


# ---------------------------------------------------------------------------------------------- isolation


def _denied(text: str) -> bool:
    low = text.lower()
    return "not permitted" in low or "permission denied" in low or "denied" in low


def isolation_probes(v: View) -> list[dict]:
    """One entry per probe: {"probe", "escaped" (bool or None if it could not run), "detail"}."""
    m, checks, host = v.markers, v.checks, v.name == "host"
    same_kernel = True if host else v.same_kernel_as_host()
    own = "own UTS namespace" if same_kernel else "guest kernel"
    out = []

    visible = m.first("host_processes", "visible")
    out.append({"probe": PROBES[0], "escaped": None if visible is None else visible == "yes",
                "detail": {"yes": "visible", "no": f"hidden (sees {m.first('host_processes', 'processes')} "
                                                    f"processes)"}.get(visible or "", "did not run")})

    macs = set(((v.data.get("host_evidence") or {}).get("macs") or {}).values())
    ifaces = [val.split() for val in m.values("host_network", "iface")]
    ifaces = [f for f in ifaces if len(f) == 2]
    seen = sorted(name for name, mac in ifaces if mac in macs)
    names = ", ".join(name for name, _ in ifaces) or "none"
    if not m.ran("host_network"):
        out.append({"probe": PROBES[1], "escaped": None, "detail": "did not run"})
    else:
        out.append({"probe": PROBES[1], "escaped": bool(seen),
                    "detail": f"visible: {', '.join(seen)}" if seen else f"hidden (sees {names})"})

    reach = m.first("host_files", "reachable")
    out.append({"probe": PROBES[2], "escaped": None if reach is None else reach == "yes",
                "detail": {"yes": "reachable", "no": "unreachable"}.get(reach or "", "did not run")})

    attempt = m.first("hostname", "attempt")
    if attempt is None:
        out.append({"probe": PROBES[3], "escaped": None, "detail": "did not run"})
    elif host:
        out.append({"probe": PROBES[3], "escaped": attempt.startswith("allowed"),
                    "detail": "allowed (set to its own name)" if attempt.startswith("allowed") else "denied"})
    else:
        changed = checks.get("host_hostname_changed", False) or not checks.get("host_hostname_unchanged_after", True)
        detail = "host's changed" if changed else (
            f"set in its {own} only" if attempt.startswith("allowed") else "denied")
        out.append({"probe": PROBES[3], "escaped": bool(changed), "detail": detail})

    attempt = m.first("mount", "attempt")
    if attempt is None:
        out.append({"probe": PROBES[4], "escaped": None, "detail": "did not run"})
    else:
        seen_mount = checks.get("host_sees_mount")
        if host:
            out.append({"probe": PROBES[4], "escaped": attempt.startswith("allowed"),
                        "detail": "mounted" if attempt.startswith("allowed") else "denied"})
        else:
            where = "its own mount namespace" if same_kernel else "the guest kernel"
            detail = "on the host" if seen_mount else (
                f"mounted in {where} only" if attempt.startswith("allowed") else "denied")
            out.append({"probe": PROBES[4], "escaped": bool(seen_mount), "detail": detail})

    out.append(_module_probe(v, same_kernel))
    return out


def _module_probe(v: View, same_kernel: bool | None) -> dict:
    m = v.markers
    results = []  # (what, code) with code 0 reached the kernel, 1 blocked, 2 not in this kernel
    for key in ("module", "reboot", "insmod"):
        value = m.first("kernel_module", key)
        if value is None:
            continue
        code, _, text = value.partition(" ")
        if key == "insmod":  # fallback without the helper: a non-module file; EPERM = stopped before the parser
            code = "1" if _denied(text) else "0"
            key = "module"
        results.append((key, int(code) if code.isdigit() else 1))
    if not results:
        return {"probe": PROBES[5], "escaped": None, "detail": "did not run"}
    reached = [k for k, c in results if c == 0]
    parts = []
    for key, code in results:
        parts.append(f"{key}: " + {0: "reached the kernel", 1: "blocked", 2: "not in this kernel"}.get(code, "?"))
    if reached and same_kernel is False:
        detail = f"{' and '.join(reached)}: reached the guest kernel only"
        return {"probe": PROBES[5], "escaped": False, "detail": detail}
    return {"probe": PROBES[5], "escaped": bool(reached), "detail": "; ".join(parts)}


def escape_probes(v: View) -> tuple[str, dict | None]:
    """minirun/probes.py's escape probes in this instance: the cell's line and the judged results."""
    raw = v.raw.get("escape_probes")
    if not raw:
        return "escape probes: not run", None
    if not raw.get("ran"):
        return f"escape probes: not run ({raw.get('reason')})", None
    judged = escapes.judge(raw.get("results", []), v.same_kernel_as_host())
    return escapes.summary_line(judged, v.name == "vm"), judged


def isolation_cell(v: View) -> dict:
    if not v.available:
        return unavailable(v.reason)
    if not v.suite:
        return unavailable(v.suite_problem())
    probes = isolation_probes(v)
    ran = [p for p in probes if p["escaped"] is not None]
    short = {PROBES[0]: "processes", PROBES[1]: "interfaces", PROBES[2]: "files", PROBES[3]: "hostname",
             PROBES[4]: "mount", PROBES[5]: "module/reboot"}
    if v.name == "host":
        ok = sum(1 for p in ran if p["escaped"])
        head = f"controls: {ok}/{len(probes)} succeed on the host itself"
        values = {"controls_succeeded": ok, "probes": probes}
    else:
        safe = sum(1 for p in ran if not p["escaped"])
        head = f"{safe}/{len(probes)} probes pass (host unaffected)"
        values = {"passed": safe, "escaped": len(ran) - safe, "not_run": len(probes) - len(ran), "probes": probes}
    lines = [head] + [f"{short[p['probe']]}: {'ESCAPED: ' if p['escaped'] and v.name != 'host' else ''}"
                      f"{p['detail']}" for p in probes]
    if v.name in ("container", "vm"):
        line, judged = escape_probes(v)
        lines.append(line)
        if judged is not None:
            values["escape_probes"] = judged
    if not v.suite_ok:
        lines.append(f"(incomplete: {v.suite_problem()})")
    return cell(lines, total=len(probes), **values)


# ---------------------------------------------------------------------------------------------- other rows


def _density_per_instance(v: View) -> float | None:
    dens = v.raw.get("density") or {}
    totals = [i.get("total_bytes") for i in dens.get("instances", []) if i.get("total_bytes")]
    return statistics.mean(totals) if totals else None


def os_cell(v: View) -> dict:
    if not v.available:
        return unavailable(v.reason)
    release = v.markers.first("kernel", "release") or "?"
    same = v.same_kernel_as_host()
    disk = v.data.get("disk", {})
    lines = [f"kernel: {release}" + ("" if v.name == "host" else " (the host's)" if same else " (its own)")]
    values: dict = {"kernel": release, "same_kernel_as_host": same}
    if v.name == "host":
        lines.append("idle cost: none (the baseline)")
    else:
        per = _density_per_instance(v)
        dens = v.raw.get("density") or {}
        if per is not None:
            how = {"vm": "QEMU RSS", "container": "minirun-shim RSS + cgroup memory",
                   "runc": "cgroup memory; runc leaves no process"}[v.kind]
            lines.append(f"idle cost: {mib(per)} per instance ({how}, k={dens.get('k')})")
            values["idle_bytes_per_instance"] = per
        else:
            lines.append(f"idle cost: not measured ({dens.get('error', 'density skipped')})")
    if v.name == "vm" and "kernel_bytes" in disk:
        lines.append(f"on disk: kernel {mib(disk['kernel_bytes'])} + initramfs {mib(disk['initramfs_bytes'])} "
                     f"(holds the rootfs)")
        values["disk_bytes"] = disk["kernel_bytes"] + disk["initramfs_bytes"]
    elif v.kind in ("container", "runc"):
        lines.append(f"on disk: rootfs {mib(disk.get('rootfs_bytes'))}, no kernel")
        values["disk_bytes"] = disk.get("rootfs_bytes")
    return cell(lines, **values)


def compat_cell(v: View, host: View) -> dict:
    if not v.available:
        return unavailable(v.reason)
    m, h = v.markers, host.markers
    host_release = (v.data.get("environment") or {}).get("kernel") or h.first("kernel", "release")
    release = m.first("kernel", "release")
    if release is None:
        return unavailable(v.suite_problem())
    if v.name == "host":
        return cell([f"kernel {release}", f"kernel.threads-max {m.first('kernel', 'threads_max')}",
                     f"boot_id {str(m.first('kernel', 'boot_id'))[:8]}..."], kernel=release)
    same = v.same_kernel_as_host()
    lines = [f"kernel {release} vs host {host_release}: " + ("same" if release == host_release else "different")]
    values = {"kernel": release, "host_kernel": host_release, "same_kernel_instance": same}
    # kernel.threads-max: global (not namespaced), sized by the kernel from the RAM it manages at boot.
    # (kernel.pid_max would not do: it is per PID namespace since Linux 6.14.)
    tmax, host_tmax = m.first("kernel", "threads_max"), h.first("kernel", "threads_max")
    if tmax and host_tmax:
        lines.append(f"kernel.threads-max {tmax} vs {host_tmax}: " + ("same" if tmax == host_tmax
                                                                       else "its own setting"))
        values["threads_max"], values["host_threads_max"] = tmax, host_tmax
    cmdline, host_cmdline = m.first("kernel", "cmdline"), h.first("kernel", "cmdline")
    if cmdline is not None and host_cmdline is not None:
        lines.append("/proc/cmdline: " + ("the host's" if cmdline == host_cmdline else f"its own ({cmdline[:60]})"))
    lines.append("boot_id: " + ("the host's (same running kernel)" if same else "different (another kernel)"))
    return cell(lines, **values)


def deploy_cell(v: View) -> dict:
    if not v.available:
        return unavailable(v.reason)
    dep = v.raw.get("deploy")
    if not dep:
        return unavailable("deployment was not measured")
    echo_ok = [s for s in dep["echo"] if s["exit_code"] == 0]
    true_ok = [s for s in dep["true"] if s["exit_code"] == 0]
    start = _stats([s.get("output_s") for s in echo_ok])
    e2e = _stats([s["wall_s"] for s in true_ok])
    lines = [f"start to first output: {spread(start)}", f"/bin/true end to end: {spread(e2e)}"]
    values: dict = {"start_s": start, "true_s": e2e}
    if e2e:
        rate = 1 / e2e["median"]
        lines.append(f"{rate:.3g} instances/s one after another")
        values["sequential_per_s"] = rate
    failed = len(dep["echo"]) + len(dep["true"]) - len(echo_ok) - len(true_ok)
    if failed:
        lines.append(f"{failed} runs failed: {(dep['true'] + dep['echo'])[0].get('error', '')[:60]}")
    if v.accel:
        lines.append(f"accelerator: {v.accel}")
    return cell(lines, **values)


def storage_cell(v: View) -> dict:
    if not v.available:
        return unavailable(v.reason)
    suite = v.raw.get("storage_suite") if v.name == "vm" else v.suite
    if not suite:
        return unavailable("the storage run did not happen")
    markers = Markers([_marker(m) for m in suite.get("markers", [])])
    overhead = v.clock_overhead(markers)
    mb = v.data.get("options", {}).get("store_mib", 0)
    samples = [d for d in markers.durations("storage", overhead) if d > 0]
    rates = _stats([mb / d for d in samples])
    how = {"vm": "9p share (-v HOSTDIR:/data)", "container": "bind mount (-v)", "runc": "bind mount",
           "host": "host directory"}[v.kind]
    survived = (suite.get("host_checks") or {}).get("survivor_found")
    lines = [f"via {how}"]
    if v.name != "host":
        lines.append("file written inside survives the instance: " + ("yes" if survived else "NO"))
    if rates:
        lines.append(f"fsync'ed {mb} MiB write: {spread(rates, lambda x: f'{x:.0f} MiB/s')}")
    else:
        lines.append(f"write: no samples ({suite.get('error') or markers.first('storage', 'skipped') or 'failed'})")
    return cell(lines, survived=survived, mib_per_s=rates, mode=how)


def density_cell(v: View) -> dict:
    if not v.available:
        return unavailable(v.reason)
    if v.name == "host":
        return cell(["(no instances)"], "not_applicable")
    dens = v.raw.get("density")
    if not dens:
        return unavailable("density was not measured")
    if dens.get("error"):
        return unavailable(dens["error"])
    k = dens["k"]
    per = _density_per_instance(v)
    rate = k / dens["start_all_s"] if dens.get("start_all_s") else None
    lines = [f"{k} idle started at once in {ms(dens.get('start_all_s'))} ({rate:.3g}/s)" if rate else f"k={k}"]
    values: dict = {"k": k, "start_all_s": dens.get("start_all_s"), "started_per_s": rate,
                    "bytes_per_instance": per}
    if per:
        fit = int(dens.get("mem_available_bytes", 0) // per)
        lines.append(f"{mib(per)} each; about {fit} would fit in {mib(dens.get('mem_available_bytes'))} free "
                     f"(extrapolation)")
        values["fit_in_free_memory_extrapolated"] = fit
    if v.name == "vm":
        wrapper = [i.get("wrapper_rss_kib") for i in dens.get("instances", []) if i.get("wrapper_rss_kib")]
        if wrapper:
            lines.append(f"(+{mib(statistics.mean(wrapper) * 1024)} per `minirun vm run` process)")
        if v.accel:
            lines.append(f"accelerator: {v.accel}")
    return cell(lines, **values)


def network_cell(v: View) -> dict:
    if not v.available:
        return unavailable(v.reason)
    m = v.markers
    if not m.ran("network"):
        return unavailable(v.suite_problem())
    addrs = [parse_addr(a) for a in m.values("host_network", "addr")]
    shown = [f"{name} {addr}" for name, fam, addr in filter(None, addrs) if fam == "inet"]
    ifaces = [val.split()[0] for val in m.values("host_network", "iface")]
    lines = ["sees: " + (", ".join(shown) if shown else ", ".join(ifaces) or "no interfaces")]
    values: dict = {"interfaces": ifaces, "addresses": shown}
    if m.first("network", "lo_raised"):
        lines.append("(lo was down; the probe brought it up)")
    rtt = parse_rtt(m.first("network", "lo_rtt"))
    pings = v.data.get("options", {}).get("pings")
    if rtt:
        lines.append(f"loopback RTT: avg {rtt['avg']:.3g} ms ({rtt['min']:.3g}-{rtt['max']:.3g}, {pings} pings"
                     + (f", {v.accel})" if v.accel else ")"))
        values["lo_rtt_ms"] = rtt
    else:
        lines.append(f"loopback RTT: {m.first('network', 'lo_error') or 'not measured'}")
    nic = {"vm": "virtio-net", "container": "veth"}.get(v.name, "NIC")
    for key, label, value_key in (("gw", f"{nic} to the bridge {{addr}} (host end)", "bridge_rtt_ms"),
                                  ("peer", "to a container on the bridge ({addr})", "peer_rtt_ms")):
        found = m.first("network", f"{key}_rtt")
        if found:
            addr, _, text = found.partition(" ")
            rtt = parse_rtt(text)
            if rtt:
                lines.append(f"{label.format(addr=addr)}: avg {rtt['avg']:.3g} ms")
                values[value_key] = rtt
        elif m.first("network", f"{key}_error"):
            lines.append(f"{label.format(addr='')}: {m.first('network', f'{key}_error')}")
    bridge = (v.suite.get("host_checks") or {}).get("bridge") if v.suite else None
    if bridge:
        rtt = parse_rtt(bridge.get("ping"))
        if rtt:
            lines.append(f"host to {bridge['address']}: avg {rtt['avg']:.3g} ms")
            values["host_rtt_ms"] = rtt
        elif bridge.get("ping_error"):
            lines.append(f"host to {bridge.get('address')}: {bridge['ping_error']}")
        tcp = bridge.get("tcp")
        if tcp and tcp["seconds"] > 0 and tcp["bytes_received"] == tcp["bytes_sent"]:
            rate = tcp["bytes_received"] / tcp["seconds"] / (1 << 20)
            lines.append(f"TCP host to instance: {rate:.0f} MiB/s ({mib(tcp['bytes_received'])} "
                         f"in {ms(tcp['seconds'])}, busybox nc)")
            values["tcp_mib_per_s"] = rate
        elif tcp:
            lines.append(f"TCP host to instance: sent {tcp['bytes_sent']} bytes, the instance counted "
                         f"{tcp['bytes_received']}")
        elif bridge.get("tcp_error") or bridge.get("error"):
            lines.append(f"TCP host to instance: {bridge.get('tcp_error') or bridge.get('error')}")
    if v.name == "vm":
        lines.append("virtio-net on a tap on the minirun0 bridge (--network bridge)")
    elif v.name == "container":
        lines.append("veth pair on the minirun0 bridge (--network bridge)")
    elif v.kind == "runc":
        lines.append("loopback only (runc spec: empty network namespace)")
    return cell(lines, **values)


def perf_cell(v: View, host: View) -> dict:
    if not v.available:
        return unavailable(v.reason)
    lines, values = [], {}
    for unit, label in (("perf_cpu", "CPU (sha256 64 MiB)"), ("perf_syscall", "syscalls (dd bs=1 x200k)")):
        st = v.workload(unit)
        base = host.workload(unit) if host.available else None
        if not st:
            lines.append(f"{label}: not measured")
            continue
        values[unit] = st
        if v.name == "host" or not base:
            lines.append(f"{label}: {spread(st)}")
        else:
            ratio = st["median"] / base["median"] if base["median"] else None
            values[unit + "_ratio"] = ratio
            lines.append(f"{label}: {ratio:.2f}x host ({ms(st['median'])}, {v.tag()})")
    return cell(lines, **values)


def build_rows(data: dict) -> list[dict]:
    views = {name: View(name, data) for name in columns(data)}
    host = views["host"]
    makers = {
        "Isolation": isolation_cell,
        "Operating system": os_cell,
        "Guest compatibility": lambda v: compat_cell(v, host),
        "Deployment": deploy_cell,
        "Persistent storage": storage_cell,
        "Load balancing / density": density_cell,
        "Networking": network_cell,
        "Performance": lambda v: perf_cell(v, host),
    }
    rows = []
    for area in AREAS:
        cells = {}
        for name in columns(data):
            try:
                cells[name] = makers[area](views[name])
            except Exception as err:  # a malformed sample must cost one cell, not the report
                cells[name] = cell([f"could not be computed: {err!r}"], "error")
        rows.append({"area": area, "cells": cells})
    return rows


# ---------------------------------------------------------------------------------------------- rendering


def _wrap(lines: list[str], width: int) -> list[str]:
    out = []
    for line in lines:
        out += textwrap.wrap(line, width, subsequent_indent="  ", break_on_hyphens=False) or [""]
    return out


def render_text(data: dict, rows: list[dict], width: int | None = None) -> str:
    width = width or max(shutil.get_terminal_size((160, 40)).columns, 100)
    titles, cols = column_titles(data), columns(data)
    area_w = max(len(a) for a in AREAS) + 1
    col_w = max((width - area_w - 3 * len(cols) - 1) // len(cols), 20)
    sep = "+" + "-" * (area_w + 2) + "".join("+" + "-" * (col_w + 2) for _ in cols) + "+"

    def line(cells: list[list[str]]) -> list[str]:
        height = max(len(c) for c in cells)
        out = []
        for i in range(height):
            parts = [(c[i] if i < len(c) else "") for c in cells]
            out.append("| " + parts[0].ljust(area_w) + " | " + " | ".join(p.ljust(col_w) for p in parts[1:]) + " |")
        return out

    out = [sep] + line([["Area"]] + [_wrap(titles[c], col_w) for c in cols]) + [sep.replace("-", "=")]
    for row in rows:
        out += line([_wrap([row["area"]], area_w)] + [_wrap(row["cells"][c]["text"], col_w) for c in cols])
        out.append(sep)
    notes = [""] + _wrap(["Security settings and accelerator of each column:"]
                         + [f"- {s}" for s in settings_lines(data)], width)
    return "\n".join([_header(data)] + out + notes) + "\n"


def _header(data: dict) -> str:
    env = data.get("environment") or {}
    accel = env.get("accel") or {}
    v = env.get("versions") or {}
    return (f"minirun compare, {env.get('date', '?')}: {env.get('cpu_model', '?')} x{env.get('cpus', '?')}, "
            f"{mib(env.get('mem_total_bytes'))} RAM, host kernel {env.get('kernel', '?')}, load average "
            f"{_load(env.get('loadavg'))} at start, {_load(env.get('loadavg_end'))} at end\n"
            f"QEMU {v.get('qemu') or 'n/a'}; accelerator {accel.get('name', 'n/a')}"
            f"{' (' + accel['reason'] + ')' if accel.get('reason') else ''}; runc {v.get('runc') or 'n/a'}; "
            f"minirun {v.get('minirun', '?')}; runs per figure: {data.get('options', {}).get('runs')}")


def _load(values) -> str:
    return f"{values[0]:.2f}" if values else "?"


def render_markdown(data: dict, rows: list[dict]) -> str:
    titles, cols = column_titles(data), columns(data)

    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    out = [_header(data).replace("\n", "  \n"), "",
           "| Area | " + " | ".join("<br>".join(esc(t) for t in titles[c]) for c in cols) + " |",
           "|---|" + "---|" * len(cols)]
    for row in rows:
        cells = ["<br>".join(esc(t) for t in row["cells"][c]["text"]) for c in cols]
        out.append(f"| **{row['area']}** | " + " | ".join(cells) + " |")
    out += ["", "Security settings and accelerator of each column:", ""] + [f"- {esc(s)}" for s in settings_lines(data)]
    return "\n".join(out) + "\n"


def to_json(data: dict, rows: list[dict]) -> str:
    return json.dumps(dict(data, rows=rows), indent=2, default=str) + "\n"
