"""The escape probes of minirun/probes.py (issue 6 item 6) in the comparison's Isolation row.

The same 19 probes that tests/integration/test_escape.py runs in default
containers, run by the same static helper (csrc/probe.c; exit 0 ESCAPED,
1 blocked, 2 not applicable), filled from the same kind of context: a host
process holding a token, a host-only file, a listener on the host's 127.0.0.1,
the host's root device.

Where they run:

  container  each probe in its own `minirun run -v HELPER:/.minirun-probe:ro [probe.options] ROOTFS ...`,
             exactly as the escape suite does: two probes need options of their own (--read-only,
             --cap-drop NET_RAW), and ptrace-outside targets PID 1, which in a single suite instance
             would be the suite's own shell (same privilege, so not "outside");
  vm         all of them inside the VM suite's one boot (the ``escape_probes`` unit, probes passed in
             MRC_ESCAPES), the helper being part of the boot's copy of ROOTFS.

How they are judged, as the comparison judges kernel calls elsewhere: in a
container the kernel is the host's, so any ESCAPED is an escape.  In a VM a
kernel-level probe (module, reboot, sysrq, /proc/sys, keyring, user namespace,
ptrace, mknod, raw socket, rlimit, kcore, /dev/mem, hostname, remount) that got
through only reached the guest's own kernel, when the guest's boot_id differs
from the host's; the host-reaching probes (:data:`HOST_REACHING`) must be
blocked everywhere.
"""

from __future__ import annotations

from ..probes import BLOCKED, ESCAPED, NOT_APPLICABLE, PROBE_DIR, PROBES, root_device

HELPER = f"{PROBE_DIR}/probe"  # the helper's path inside a container, and inside the VM's copy of ROOTFS

# Probes whose success reaches the host itself, whatever kernel they ran on.
HOST_REACHING = frozenset({"host-processes", "host-network", "host-block-device", "chroot-escape"})

VERDICTS = ("blocked", "not applicable", "guest kernel only", "ESCAPED", "no result")


def context(marker: str, host_file: str, port: int, probe: str = HELPER) -> dict:
    major, minor, fstype = root_device()
    return {"probe": probe, "host_probe": "", "marker": marker, "host_file": host_file,
            "host_file_rel": host_file.lstrip("/"), "port": port, "root_major": major, "root_minor": minor,
            "root_fstype": fstype or "none"}


def rendered(ctx: dict) -> list[dict]:
    """Each probe as {"probe", "argv", "options"}, argv[0] being the helper."""
    return [{"probe": p.name, "argv": p.render(p.argv, **ctx), "options": list(p.options)} for p in PROBES]


def env_value(probes: list[dict]) -> str:
    """MRC_ESCAPES for the ``escape_probes`` unit: "NAME,ARG,ARG NAME,ARG ..." (the helper comes from MRC_PROBE)."""
    specs = []
    for p in probes:
        fields = [p["probe"], *p["argv"][1:]]
        bad = [f for f in fields if not f or any(c in f for c in ", \t\n*?[")]
        if bad:
            raise ValueError(f"probe {p['probe']}: argument {bad[0]!r} cannot travel in MRC_ESCAPES")
        specs.append(",".join(fields))
    return " ".join(specs)


def from_markers(markers, rendered_probes: list[dict]) -> list[dict]:
    """The unit's ``result NAME RC OUTPUT`` markers as raw results (probes with no marker are left out)."""
    argv = {p["probe"]: p for p in rendered_probes}
    out = []
    for value in markers.values("escape_probes", "result"):
        name, _, rest = value.partition(" ")
        code, _, text = rest.partition(" ")
        if name not in argv:
            continue
        out.append({"probe": name, "argv": argv[name]["argv"], "options": [], "exit_code": _int(code),
                    "output": text.strip(), "where": "suite"})
    return out


def _int(text: str) -> int | None:
    return int(text) if text.lstrip("-").isdigit() else None


def verdict(result: dict, same_kernel: bool | None) -> str:
    code = result.get("exit_code")
    if code == BLOCKED:
        return "blocked"
    if code == NOT_APPLICABLE:
        return "not applicable"
    if code == ESCAPED:
        if same_kernel is False and result["probe"] not in HOST_REACHING:
            return "guest kernel only"
        return "ESCAPED"
    return "no result"


def judge(results: list[dict], same_kernel: bool | None) -> dict:
    """Counts and per-probe verdicts; every probe of PROBES appears (missing ones as "no result")."""
    by_name = {r["probe"]: r for r in results}
    judged = []
    for p in PROBES:
        r = by_name.get(p.name) or {"probe": p.name, "exit_code": None, "output": "did not run"}
        v = verdict(r, same_kernel)
        judged.append({"probe": p.name, "exit_code": r.get("exit_code"), "verdict": v,
                       "reaches": "host" if p.name in HOST_REACHING else "kernel",
                       "escaped": True if v == "ESCAPED" else None if v == "no result" else False,
                       "output": r.get("output", "")})
    counts = {v: sum(1 for j in judged if j["verdict"] == v) for v in VERDICTS}
    return {"total": len(PROBES), "stopped": counts["blocked"] + counts["not applicable"] + counts["guest kernel only"],
            "blocked": counts["blocked"], "not_applicable": counts["not applicable"],
            "guest_kernel_only": counts["guest kernel only"], "escaped": counts["ESCAPED"],
            "no_result": counts["no result"], "same_kernel_as_host": same_kernel, "probes": judged}


def summary_line(j: dict, vm: bool) -> str:
    parts = [f"{j['blocked']} blocked"]
    if j["not_applicable"]:
        parts.append(f"{j['not_applicable']} n/a")
    if j["guest_kernel_only"]:
        parts.append(f"{j['guest_kernel_only']} reached the guest kernel only")
    line = f"escape probes: {j['stopped']}/{j['total']} {'contained' if vm else 'stopped'} ({', '.join(parts)})"
    escaped = [p["probe"] for p in j["probes"] if p["verdict"] == "ESCAPED"]
    missing = [p["probe"] for p in j["probes"] if p["verdict"] == "no result"]
    if escaped:
        line += f"; ESCAPED: {', '.join(escaped)}"
    if missing:
        line += f"; no result: {', '.join(missing)}"
    return line

