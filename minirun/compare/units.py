"""The probes and workloads of `minirun compare`, each a small named unit of busybox sh.

A unit is a shell snippet that runs unchanged on the host (under the rootfs's own
busybox), in a minirun container, under runc and in a minirun VM.  What differs
between those places comes in through ``MRC_*`` environment variables (see
:data:`PARAMS`), never through the text of the snippet.  A unit reports by
printing marker lines::

    @@mrc <unit> <key> [value ...]

which :func:`parse_markers` reads back from whatever mixes them with other output
(a VM's serial console adds ``\\r`` and may interleave kernel messages).

:func:`suite_script` joins units into one script so that one instance (one VM
boot, in particular) runs every probe and workload; each unit runs in a subshell,
framed by ``begin``/``end <status>`` markers, so one failing unit does not stop the
others.  Workloads repeat ``MRC_RUNS`` times and time themselves with the
instance's own clock (``adjtimex`` gives microseconds; busybox ``date`` has no %N);
the ``clock`` unit measures the cost of reading that clock, which is subtracted.

The escape attempts that cannot be made harmlessly in shell (init_module, reboot)
use the security engineer's static helper (csrc/probe.c, listed in minirun/probes.py)
when ``MRC_PROBE`` names it, and fall back to busybox ``insmod`` with a file that
is not a module plus the CAP_SYS_BOOT bit otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MARK = "@@mrc"

# Environment the units read; the runners fill them in per place (values here are the meaning).
PARAMS = {
    "MRC_RUNS": "repetitions of each workload",
    "MRC_PAT": "a regex matching a host-only token, written so that it does not match itself",
    "MRC_FILE": "absolute path of a file that exists only on the host and contains the token",
    "MRC_HOSTNAME": "hostname to try to set (on the host: its current name, so nothing changes)",
    "MRC_MNT": "source name for the tmpfs the mount probe tries (the host looks for it in its mount table)",
    "MRC_WORK": "a writable scratch directory",
    "MRC_DATA": "a directory shared with the host, or empty",
    "MRC_STORE_MB": "MiB written per storage sample",
    "MRC_PINGS": "echo requests per ping",
    "MRC_PING_GW": "an address on the host side of the instance's virtual NIC to ping, or empty",
    "MRC_PEER": "the address of another instance on the same bridge to ping, or empty",
    "MRC_TCP_PORT": "a port to wait on with `nc -l` for the host's ping and TCP transfer (MRC_TCP_WAIT s at most), "
                    "or empty",
    "MRC_TCP_WAIT": "seconds the instance waits for the host's transfer",
    "MRC_PROBE": "path of the static escape-probe helper (csrc/probe.c), or empty",
    "MRC_ESCAPES": "the escape probes of minirun/probes.py to run, 'NAME,ARG,ARG NAME,...' (escapes.env_value), or empty",
    "MRC_SURVIVOR": "text written to MRC_DATA/mrc-survivor (the host reads it back after the instance is gone)",
}

PRELUDE = r"""
mark() { echo "@@mrc $UNIT $*"; }
now() { adjtimex 2>/dev/null | awk '/tv_sec/ {s=$2} /tv_usec/ {u=$2} END {printf "%d.%06d\n", s, u}'; }
"""


@dataclass(frozen=True)
class Unit:
    name: str
    area: str  # the table row it feeds
    what: str  # one line: what it measures
    script: str


UNITS: tuple[Unit, ...] = (
    Unit("kernel", "Operating system", "the kernel the instance runs on, and settings only a kernel of its own changes",
         r"""
mark release "$(uname -r)"
mark version "$(uname -v)"
mark cmdline "$(cat /proc/cmdline 2>/dev/null)"
mark boot_id "$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)"
mark threads_max "$(cat /proc/sys/kernel/threads-max 2>/dev/null)"
mark nproc "$(nproc)"
mark memtotal_kib "$(awk '/^MemTotal/ {print $2}' /proc/meminfo)"
mark capeff "$(awk '/^CapEff/ {print $2}' /proc/self/status)"
mark seccomp "$(awk '/^Seccomp:/ {print $2}' /proc/self/status)"
mark nnp "$(awk '/^NoNewPrivs:/ {print $2}' /proc/self/status)"
"""),
    Unit("clock", "Performance", "cost of one reading of the instance's clock (subtracted from workload times)",
         r"""
i=0
while [ $i -lt "$MRC_RUNS" ]; do t0=$(now); t1=$(now); mark sample "$t0" "$t1"; i=$((i + 1)); done
"""),
    Unit("host_processes", "Isolation", "a host process whose command line holds the token is visible",
         r"""
if grep -l -e "$MRC_PAT" /proc/[0-9]*/cmdline >/dev/null 2>&1; then mark visible yes; else mark visible no; fi
mark processes "$(ls -d /proc/[0-9]* 2>/dev/null | wc -l)"
"""),
    Unit("host_network", "Isolation", "network interfaces (name, MAC) and addresses the instance sees",
         r"""
for d in /sys/class/net/*; do
    [ -e "$d/address" ] && mark iface "${d##*/}" "$(cat "$d/address")"
done
ip -o addr 2>/dev/null | while read -r line; do mark addr "$line"; done
"""),
    Unit("host_files", "Isolation", "the host-only file is reachable (by its path, or through /proc/1/root)",
         r"""
found=no
for p in "$MRC_FILE" "/proc/1/root$MRC_FILE"; do grep -q -e "$MRC_PAT" "$p" 2>/dev/null && found=yes; done
mark reachable "$found"
"""),
    Unit("hostname", "Isolation", "sethostname (the host then checks its own hostname)",
         r"""
if err=$(hostname "$MRC_HOSTNAME" 2>&1); then mark attempt allowed; else mark attempt denied "$err"; fi
mark now "$(hostname)"
"""),
    Unit("mount", "Isolation", "mount a tmpfs (kept until the cleanup unit; the host looks for it meanwhile)",
         r"""
d="$MRC_WORK/mrc-mnt"
mkdir -p "$d"
if err=$(mount -t tmpfs "$MRC_MNT" "$d" 2>&1); then mark attempt allowed; else mark attempt denied "$err"; fi
"""),
    Unit("kernel_module", "Isolation", "load a kernel module; reboot (both stopped by the kernel before they act)",
         r"""
if [ -n "$MRC_PROBE" ] && [ -x "$MRC_PROBE" ]; then
    out=$("$MRC_PROBE" init-module 2>&1); mark module "$?" "$out"
    out=$("$MRC_PROBE" reboot 2>&1); mark reboot "$?" "$out"
else
    echo "not a module" > "$MRC_WORK/mrc-notmod.ko"
    if out=$(insmod "$MRC_WORK/mrc-notmod.ko" 2>&1); then mark insmod 0 "$out"; else mark insmod 1 "$out"; fi
    rm -f "$MRC_WORK/mrc-notmod.ko"
fi
mark capeff "$(awk '/^CapEff/ {print $2}' /proc/self/status)"
"""),
    Unit("escape_probes", "Isolation", "the escape probes of minirun/probes.py, each by the static helper "
         "(exit 0 escaped, 1 blocked, 2 not applicable)",
         r"""
if [ -z "$MRC_ESCAPES" ] || [ ! -x "$MRC_PROBE" ]; then mark skipped "no escape probes for this instance"; exit 0; fi
set -f
for spec in $MRC_ESCAPES; do
    IFS=,; set -- $spec; unset IFS
    name=$1; shift
    out=$("$MRC_PROBE" "$@" 2>&1 </dev/null); rc=$?
    mark result "$name" "$rc" "$(echo "$out" | tr '\n' ' ')"
done
"""),
    Unit("network", "Networking", "loopback round trip; on a bridge: to its host end and to another instance, "
         "then a wait on `nc -l` (answering with `wc -c`) while the host pings in and sends a bounded TCP stream",
         r"""
if ! ip link show lo 2>/dev/null | grep -q '[<,]UP[,>]'; then
    if ip link set lo up 2>/dev/null; then mark lo_raised yes; else mark lo_raised failed; fi
fi
if out=$(ping -c "$MRC_PINGS" -i 0.05 -q 127.0.0.1 2>&1); then
    mark lo_rtt "$(echo "$out" | grep round-trip)"
else
    mark lo_error "$(echo "$out" | tail -n 1)"
fi
if [ -n "$MRC_PING_GW" ]; then
    if out=$(ping -c "$MRC_PINGS" -i 0.05 -q "$MRC_PING_GW" 2>&1); then
        mark gw_rtt "$MRC_PING_GW" "$(echo "$out" | grep round-trip)"
    else
        mark gw_error "$MRC_PING_GW" "$(echo "$out" | tail -n 1)"
    fi
fi
if [ -n "$MRC_PEER" ]; then
    if out=$(ping -c "$MRC_PINGS" -i 0.05 -q "$MRC_PEER" 2>&1); then
        mark peer_rtt "$MRC_PEER" "$(echo "$out" | grep round-trip)"
    else
        mark peer_error "$MRC_PEER" "$(echo "$out" | tail -n 1)"
    fi
fi
addr=$(ip -o -4 addr show eth0 2>/dev/null | sed -n 's/.* inet \([0-9.]*\).*/\1/p' | head -n 1)
if [ -n "$MRC_TCP_PORT" ] && [ -n "$addr" ]; then
    timeout "$MRC_TCP_WAIT" nc -l -p "$MRC_TCP_PORT" -e wc -c &
    pid=$!
    mark listen "$addr" "$MRC_TCP_PORT"
    wait $pid
    mark listen_done "$?"
fi
"""),
    Unit("perf_cpu", "Performance", "sha256 of 64 MiB read from /dev/zero (CPU-bound)",
         r"""
i=0
while [ $i -lt "$MRC_RUNS" ]; do
    t0=$(now); head -c 64m /dev/zero | sha256sum >/dev/null; t1=$(now); mark sample "$t0" "$t1"; i=$((i + 1))
done
"""),
    Unit("perf_syscall", "Performance", "200000 one-byte reads and writes with dd (system-call-heavy)",
         r"""
i=0
while [ $i -lt "$MRC_RUNS" ]; do
    t0=$(now); dd if=/dev/zero of=/dev/null bs=1 count=200000 2>/dev/null; t1=$(now)
    mark sample "$t0" "$t1"; i=$((i + 1))
done
"""),
    Unit("storage", "Persistent storage", "fsync'ed write of MRC_STORE_MB MiB into the shared directory; a file left "
         "for the host",
         r"""
if [ -n "$MRC_DATA" ] && [ -d "$MRC_DATA" ]; then
    i=0
    while [ $i -lt "$MRC_RUNS" ]; do
        t0=$(now); dd if=/dev/zero of="$MRC_DATA/mrc-blob" bs=1M count="$MRC_STORE_MB" conv=fsync 2>/dev/null
        rc=$?; t1=$(now); mark sample "$t0" "$t1" "$rc"; i=$((i + 1))
    done
    rm -f "$MRC_DATA/mrc-blob"
    echo "$MRC_SURVIVOR" > "$MRC_DATA/mrc-survivor" && sync && mark survivor written
else
    mark skipped "no shared directory"
fi
"""),
    Unit("cleanup", "", "undo the mount probe and scratch files",
         r"""
umount "$MRC_WORK/mrc-mnt" 2>/dev/null
rmdir "$MRC_WORK/mrc-mnt" 2>/dev/null
mark done yes
"""),
)

BY_NAME = {u.name: u for u in UNITS}
SUITE = tuple(u.name for u in UNITS)
STORAGE_SUITE = ("clock", "storage")  # the VM's separate boot with a shared directory
PERF_SUITE = ("clock", "perf_cpu", "perf_syscall")  # the Performance row's alternated rounds (measure.py)


def suite_script(names=SUITE) -> str:
    """One busybox sh script that runs the named units in order, each in a subshell."""
    parts = [PRELUDE.strip()]
    for name in names:
        unit = BY_NAME[name]
        parts.append(f"UNIT={name}; mark begin\n({unit.script.strip()}\n)\nmark end $?")
    parts.append("UNIT=suite; mark done")
    return "\n".join(parts) + "\n"


_MARK_RE = re.compile(re.escape(MARK) + r" (\S+) (\S+) ?(.*)$")


@dataclass(frozen=True)
class Marker:
    unit: str
    key: str
    value: str
    at: float | None = None  # host clock when the line arrived, if known


def parse_line(line: str, at: float | None = None) -> Marker | None:
    """A marker from one output line, or None; tolerant of ``\\r`` and of text before the marker."""
    pos = line.find(MARK + " ")
    if pos < 0:
        return None
    match = _MARK_RE.match(line[pos:].rstrip("\r\n").replace("\r", ""))
    if not match:
        return None
    return Marker(match.group(1), match.group(2), match.group(3).strip(), at)


def parse_markers(text: str) -> list[Marker]:
    return [m for m in (parse_line(line) for line in text.splitlines()) if m is not None]


class Markers:
    """Markers grouped by unit, with the lookups the report needs."""

    def __init__(self, markers: list[Marker]):
        self.all = list(markers)

    def values(self, unit: str, key: str) -> list[str]:
        return [m.value for m in self.all if m.unit == unit and m.key == key]

    def first(self, unit: str, key: str, default: str | None = None) -> str | None:
        vals = self.values(unit, key)
        return vals[0] if vals else default

    def ran(self, unit: str) -> bool:
        """The unit began and ended (its status is in :meth:`status`)."""
        return bool(self.values(unit, "begin")) and bool(self.values(unit, "end"))

    def status(self, unit: str) -> int | None:
        end = self.first(unit, "end")
        return int(end) if end is not None and end.lstrip("-").isdigit() else None

    def durations(self, unit: str, overhead: float = 0.0) -> list[float]:
        """Seconds per ``sample T0 T1`` marker, minus ``overhead``; samples with no clock are dropped."""
        out = []
        for value in self.values(unit, "sample"):
            fields = value.split()
            try:
                t0, t1 = float(fields[0]), float(fields[1])
            except (IndexError, ValueError):
                continue
            if t0 <= 0 or t1 < t0:
                continue
            out.append(max(t1 - t0 - overhead, 0.0))
        return out

    def to_list(self) -> list[dict]:
        return [{"unit": m.unit, "key": m.key, "value": m.value} | ({"at": round(m.at, 6)} if m.at else {})
                for m in self.all]


_RTT_RE = re.compile(r"round-trip min/avg/max = ([\d.]+)/([\d.]+)/([\d.]+) ms")


def parse_rtt(text: str | None) -> dict | None:
    """busybox ping's summary -> {"min": ms, "avg": ms, "max": ms}."""
    match = _RTT_RE.search(text or "")
    if not match:
        return None
    return dict(zip(("min", "avg", "max"), (float(g) for g in match.groups())))


_ADDR_RE = re.compile(r"^\d+:\s+(\S+)\s+(inet6?)\s+(\S+)")


def parse_addr(line: str) -> tuple[str, str, str] | None:
    """One ``ip -o addr`` line -> (interface, family, address/prefix)."""
    match = _ADDR_RE.match(line.strip())
    return match.groups() if match else None


def pattern_for(token: str) -> str:
    """A regex for ``token`` that does not match its own text ("[m]rc-..." matches "mrc-..." only)."""
    return f"[{token[0]}]{re.escape(token[1:])}"
