"""Profiles to BPF: what each field means, and the program built from it (seccomp_bpf compiles it).

Used through minirun.seccomp (build_filter, filter_for). Fields, in Docker's,
containers-common's and the OCI spec's shapes:

- ``defaultAction``; ``defaultErrnoRet`` (Docker, OCI) or ``defaultErrno`` (a
  name such as "ENOSYS", containers-common); EPERM when neither is given.
- ``architectures`` (OCI, Docker) or ``archMap`` (Docker, containers-common:
  the entry of the host's architecture with its ``subArchitectures``): each
  is added to the filter, as runc does, so x86_64 with SCMP_ARCH_X86 and
  SCMP_ARCH_X32 filters ``int 0x80`` and x32 calls by the same rules.
  Calls from an architecture not in the filter kill the process.
- ``syscalls[]``: ``names`` (or ``name``), ``action``, ``errnoRet`` (or
  ``errno``, a name); an SCMP_ACT_ERRNO rule with neither returns EPERM, as
  runc does (not the default errno). ``args`` (``index``, ``value``,
  ``valueTwo``, ``op`` SCMP_CMP_*): all must hold, except that several
  conditions on one argument become one rule each (libseccomp cannot AND
  them, so runc splits them the same way). ``includes``/``excludes`` (``caps``,
  ``arches``, ``minKernel``) as Docker and podman evaluate them.
  Syscall names and numbers come from libseccomp's tables, per architecture
  (i386's socket and IPC calls also through their multiplexers, as libseccomp
  adds them); a name it does not know is skipped, as runc does. For one
  syscall, a rule without args wins over its rules with args, and the first
  such rule over later ones (libseccomp's rules); a rule whose action is the
  default action is dropped (runc). Rules with args that can hold at once but
  decide differently are refused: libseccomp's outcome there is its tree's
  internal order.
- ``flags``: SECCOMP_FILTER_FLAG_TSYNC, _LOG, _SPEC_ALLOW, _TSYNC_ESRCH,
  passed to seccomp(2) when the child loads the filter.
- ``listenerPath``, ``listenerMetadata``, SCMP_ACT_NOTIFY,
  SECCOMP_FILTER_FLAG_NEW_LISTENER: refused with a clear error (minirun has
  no seccomp agent to hand the notification fd to).

Syscalls newer than the profile: as runc's stub in front of libseccomp's
program, ENOSYS for numbers above the highest one the profile names (per
architecture), so libc falls back (e.g. to an older call) instead of failing
with EPERM; not when the default action already allows, or is ENOSYS.
tests/unit/test_seccomp.py holds every decision to libseccomp's own program
with that stub: what runc loads.
"""

from __future__ import annotations

import errno

from .seccomp_bpf import (AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, EQ, MASKED_EQ, NE, RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS,  # noqa: F401
                          RET_KILL_THREAD, RET_LOG, RET_TRACE, RET_TRAP, X32_SYSCALL_BIT, compile_program, evaluate)
from .seccomp_filter import ProfileError, SeccompFilter, kernel_version

EPERM, ENOSYS = 1, 38

_ACTIONS = {
    "SCMP_ACT_ALLOW": RET_ALLOW,
    "SCMP_ACT_LOG": RET_LOG,
    "SCMP_ACT_TRAP": RET_TRAP,
    "SCMP_ACT_KILL": RET_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": RET_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": RET_KILL_PROCESS,
}
_ACTIONS_WITH_ERRNO = {"SCMP_ACT_ERRNO": RET_ERRNO, "SCMP_ACT_TRACE": RET_TRACE}
_OPS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ")  # enum scmp_compare: 1..7
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
         "SECCOMP_FILTER_FLAG_TSYNC_ESRCH": 16}
_NOTIFY_FLAGS = ("SECCOMP_FILTER_FLAG_NEW_LISTENER", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")

# Docker's "arches" in includes/excludes use Go's names; the host's is amd64.
GO_ARCH = "amd64"
NATIVE_ARCH = "SCMP_ARCH_X86_64"

_PROFILE_KEYS = {"defaultAction", "defaultErrnoRet", "defaultErrno", "architectures", "archMap", "syscalls", "flags",
                 "listenerPath", "listenerMetadata", "comment"}
_RULE_KEYS = {"names", "name", "action", "errnoRet", "errno", "args", "comment", "includes", "excludes"}
_FILTER_KEYS = {"caps", "arches", "minKernel"}


# ---------------------------------------------------------------- the profile, resolved

def _errno(value, where: str) -> int:
    if isinstance(value, str):
        number = getattr(errno, value.strip().upper(), None)
        if not isinstance(number, int):
            raise ProfileError(f"seccomp profile: {where}: unknown errno name {value!r}")
        return number
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFF:
        raise ProfileError(f"seccomp profile: {where}: errnoRet must be a number from 0 to 65535")
    return value


def _action(name, errno_ret, errno_name, where: str) -> int:
    if name in _ACTIONS:
        return _ACTIONS[name]  # an errnoRet beside it means nothing, and runc ignores it too
    if name in _ACTIONS_WITH_ERRNO:
        if errno_ret is not None:
            value = _errno(errno_ret, where)
        elif errno_name:
            value = _errno(errno_name, where)
        else:
            value = EPERM  # runc's choice for a rule that names no errno
        return _ACTIONS_WITH_ERRNO[name] | value
    if name == "SCMP_ACT_NOTIFY":
        raise ProfileError(f"seccomp profile: {where}: SCMP_ACT_NOTIFY (seccomp user notification) is not supported: "
                           "minirun has no seccomp agent to answer it")
    raise ProfileError(f"seccomp profile: {where}: unknown action {name!r} (use one of "
                       f"{', '.join(sorted(_ACTIONS) + sorted(_ACTIONS_WITH_ERRNO))})")


def _parse_version(text, where: str) -> tuple[int, int]:
    try:
        major, _, minor = str(text).partition(".")
        return int(major), int(minor.split(".")[0] or 0)
    except ValueError:
        raise ProfileError(f"seccomp profile: {where}: bad minKernel {text!r} (use e.g. \"4.8\")") from None


def _cap(name: str) -> str:
    name = str(name).upper()
    return name if name.startswith("CAP_") else "CAP_" + name


def _selected(rule: dict, caps: frozenset, kernel: tuple[int, int], where: str) -> bool:
    """Docker's includes/excludes: is this rule part of the filter on this host, with these caps?"""
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    for part, label in ((inc, "includes"), (exc, "excludes")):
        if not isinstance(part, dict) or set(part) - _FILTER_KEYS:
            raise ProfileError(f"seccomp profile: {where}: {label} supports only caps, arches, minKernel")
    if exc.get("arches") and GO_ARCH in exc["arches"]:
        return False
    if exc.get("caps") and any(_cap(c) in caps for c in exc["caps"]):
        return False
    if exc.get("minKernel") and kernel >= _parse_version(exc["minKernel"], where):
        return False
    if inc.get("arches") and GO_ARCH not in inc["arches"]:
        return False
    if inc.get("caps") and not all(_cap(c) in caps for c in inc["caps"]):
        return False
    if inc.get("minKernel") and kernel < _parse_version(inc["minKernel"], where):
        return False
    return True


def _conditions(args, where: str) -> list[tuple]:
    """A rule's args -> one or more condition lists (several on one argument: one rule each, as runc)."""
    conds = []
    for arg in args or ():
        if not isinstance(arg, dict):
            raise ProfileError(f"seccomp profile: {where}: each of args must be an object")
        index, op = arg.get("index"), arg.get("op")
        value, two = arg.get("value", 0), arg.get("valueTwo", 0) or 0
        if not isinstance(index, int) or not 0 <= index <= 5:
            raise ProfileError(f"seccomp profile: {where}: argument index must be 0 to 5, not {index!r}")
        if op not in _OPS:
            raise ProfileError(f"seccomp profile: {where}: unknown argument op {op!r} (use one of {', '.join(_OPS)})")
        for v in (value, two):
            if not isinstance(v, int) or not 0 <= v < 1 << 64:
                raise ProfileError(f"seccomp profile: {where}: argument values must be unsigned 64-bit numbers")
        conds.append((index, _OPS.index(op) + 1, value, two))
    indexes = [c[0] for c in conds]
    if len(set(indexes)) < len(indexes):
        return [[c] for c in conds]
    return [conds]


def _architectures(profile: dict) -> list[str]:
    arches, arch_map = profile.get("architectures"), profile.get("archMap")
    if arches and arch_map:
        raise ProfileError("seccomp profile: use either architectures or archMap, not both")
    if arch_map:
        if not isinstance(arch_map, list):
            raise ProfileError("seccomp profile: archMap must be a list")
        for entry in arch_map:
            if isinstance(entry, dict) and entry.get("architecture") == NATIVE_ARCH:
                return [NATIVE_ARCH] + list(entry.get("subArchitectures") or ())
        return []  # as Docker: only the entry of the host's architecture counts
    if arches and (not isinstance(arches, list) or not all(isinstance(a, str) for a in arches)):
        raise ProfileError("seccomp profile: architectures must be a list of SCMP_ARCH_* names")
    return list(arches or ())


class Resolved:
    """A profile reduced to what libseccomp needs, for this host and these capabilities."""

    def __init__(self, default: int, arches: list, rules: list, flags: int):
        self.default = default  # the default action (SECCOMP_RET_* with its errno)
        self.arches = arches    # SCMP_ARCH_* names besides the native one
        self.rules = rules      # [(names, action, [condition lists])], in profile order
        self.flags = flags      # SECCOMP_FILTER_FLAG_*


def resolve(profile, caps=(), kernel: tuple[int, int] | None = None) -> Resolved:
    if not isinstance(profile, dict):
        raise ProfileError("seccomp profile: the top level must be a JSON object")
    unknown = set(profile) - _PROFILE_KEYS
    if unknown:
        raise ProfileError(f"seccomp profile: unsupported field(s) {', '.join(sorted(unknown))}")
    if profile.get("listenerPath") or profile.get("listenerMetadata"):
        raise ProfileError("seccomp profile: listenerPath (seccomp user notification) is not supported: minirun has "
                           "no seccomp agent to hand the notification to")
    flags = 0
    for name in profile.get("flags") or ():
        if name in _NOTIFY_FLAGS:
            raise ProfileError(f"seccomp profile: flag {name} needs a seccomp agent, which minirun does not have")
        if name not in FLAGS:
            raise ProfileError(f"seccomp profile: unknown flag {name!r} (use {', '.join(FLAGS)})")
        flags |= FLAGS[name]
    if "defaultAction" not in profile:
        raise ProfileError("seccomp profile: defaultAction is missing")
    default = _action(profile["defaultAction"], profile.get("defaultErrnoRet"), profile.get("defaultErrno"),
                      "defaultAction")
    kernel = kernel or kernel_version()
    caps = frozenset(_cap(c) for c in caps)
    rules = []
    for i, rule in enumerate(profile.get("syscalls") or ()):
        where = f"syscalls[{i}]"
        if not isinstance(rule, dict):
            raise ProfileError(f"seccomp profile: {where} must be an object")
        unknown = set(rule) - _RULE_KEYS
        if unknown:
            raise ProfileError(f"seccomp profile: {where}: unsupported field(s) {', '.join(sorted(unknown))}")
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ProfileError(f"seccomp profile: {where}: names must be a list of syscall names")
        if "action" not in rule:
            raise ProfileError(f"seccomp profile: {where}: action is missing")
        action = _action(rule["action"], rule.get("errnoRet"), rule.get("errno"), where)
        conds = _conditions(rule.get("args"), where)
        if _selected(rule, caps, kernel, where):
            rules.append((names, action, conds))
    return Resolved(default, _architectures(profile), rules, flags)


# The fields of the OCI spec's linux.seccomp (and of one of its syscalls): all a runtime such as runc reads.
OCI_PROFILE_KEYS = ("defaultAction", "defaultErrnoRet", "architectures", "flags", "listenerPath", "listenerMetadata",
                    "syscalls")
OCI_RULE_KEYS = ("names", "action", "errnoRet", "args")


def to_oci(profile, caps=(), kernel: tuple[int, int] | None = None) -> dict:
    """``profile`` as linux.seccomp for a runtime that reads only the OCI fields (runc, crun), for a process that
    keeps ``caps`` on this host: what Docker hands runc. includes/excludes are evaluated here (a runtime would
    ignore them and apply every rule), archMap becomes architectures, errno names become numbers; the filter
    minirun builds from the result is the one it builds from ``profile`` itself."""
    if profile == "default":
        from .seccomp_default import DEFAULT_PROFILE as profile
    kernel = kernel or kernel_version()
    resolve(profile, caps, kernel)  # the same checks, so a bad profile fails the same way
    wanted = frozenset(_cap(c) for c in caps)
    out = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None or profile.get("defaultErrno"):
        out["defaultErrnoRet"] = _errno(profile.get("defaultErrnoRet", profile.get("defaultErrno")), "defaultAction")
    arches = _architectures(profile)
    if arches:
        out["architectures"] = arches
    if profile.get("flags"):
        out["flags"] = list(profile["flags"])
    out["syscalls"] = []
    for i, rule in enumerate(profile.get("syscalls") or ()):
        if not _selected(rule, wanted, kernel, f"syscalls[{i}]"):
            continue
        entry = {"names": list(rule.get("names") or [rule["name"]]), "action": rule["action"]}
        errno_ret = rule.get("errnoRet", rule.get("errno"))
        if errno_ret is not None:
            entry["errnoRet"] = _errno(errno_ret, f"syscalls[{i}]")
        if rule.get("args"):
            entry["args"] = [dict(arg) for arg in rule["args"]]
        out["syscalls"].append(entry)
    return out


# ---------------------------------------------------------------- the program

# i386's socket and SysV IPC calls go through one multiplexer each (socketcall, ipc; argument 0 says
# which call), and most also have a call of their own since Linux 4.3 and 5.1. libseccomp names
# them by pseudo numbers there (-101 socket ... -224 shmctl) and a rule for one covers both ways in;
# so does minirun's. The number of its own, by pseudo number (none: the multiplexer is the only way).
_I386_MULTIPLEXED = {
    102: (-120, -100, {101: 359, 102: 361, 103: 362, 104: 363, 106: 367, 107: 368, 108: 360, 111: 369, 112: 371,
                       113: 373, 114: 366, 115: 365, 116: 370, 117: 372, 118: 364, 119: 337, 120: 345}),   # socketcall
    117: (-224, -200, {202: 393, 203: 394, 211: 400, 212: 401, 213: 399, 214: 402, 221: 397, 222: 398, 223: 395,
                       224: 396}),                                                                    # ipc
}


def build(profile, caps=(), kernel: tuple[int, int] | None = None) -> SeccompFilter:
    """minirun.seccomp.build_filter's work: libseccomp's tables name the calls, seccomp_bpf compiles."""
    if profile == "default":
        from .seccomp_default import DEFAULT_PROFILE as profile
    spec = resolve(profile, caps, kernel)
    from ._seccomp import lib

    tokens = [lib.seccomp_arch_native()]
    for name in spec.arches:
        token = lib.seccomp_arch_resolve_name(name.lower().removeprefix("scmp_arch_").encode())
        if token == 0:
            raise ProfileError(f"seccomp profile: unknown architecture {name!r}")
        if token not in tokens:
            tokens.append(token)
    per_arch = {token: _decisions(spec, token, lib) for token in tokens}
    tables = _tables(spec, per_arch, lib)
    program = compile_program(tables, spec.default, RET_KILL_PROCESS)
    if len(program) // 8 > 4096:  # BPF_MAXINSNS
        raise ProfileError(f"seccomp profile: the filter needs {len(program) // 8} instructions (the kernel's limit "
                           "is 4096)")
    return SeccompFilter(program, spec.flags)


def _numbers(lib, token: int, name: str, conds: list) -> list[tuple[int, list]]:
    """Where a rule for ``name`` lands on one architecture: [(syscall number, its conditions)]."""
    nr = lib.seccomp_syscall_resolve_name_arch(token, name.encode())
    if nr >= 0:
        return [(nr, conds)]
    for multiplexer, (low, high, own) in _I386_MULTIPLEXED.items():
        if token == AUDIT_ARCH_I386 and low <= nr <= high:
            call = -nr % (-high)
            # the multiplexer's argument 0 is the call; the rule's own test of argument 0 cannot be made
            muxed = [(0, EQ, call, 0)] + [c for c in conds if c[0] != 0]
            return [(multiplexer, muxed)] + ([(own[-nr], conds)] if -nr in own else [])
    return []  # a call this architecture does not have


def _decisions(spec: Resolved, token: int, lib) -> dict[int, object]:
    """syscall number -> its action, or its argument rules ((conditions, action), ...) in profile order.

    libseccomp's rules, which runc's filters follow: a rule without arguments wins over the call's rules
    with arguments, and the first such rule over later ones; a rule whose action is the default is
    dropped. Where libseccomp's outcome would hang on the order of its internal tree (argument rules
    that can hold at once but decide differently), the profile is refused."""
    plain: dict[int, int] = {}
    ruled: dict[int, dict[tuple, int]] = {}
    names_of: dict[int, str] = {}
    for names, action, cond_lists in spec.rules:
        if action == spec.default:
            continue  # libseccomp refuses such a rule (EACCES); runc skips it too
        for name in names:
            if lib.seccomp_syscall_resolve_name(name.encode()) == lib.__NR_SCMP_ERROR:
                continue  # unknown to libseccomp: skipped, as runc does
            for conds in cond_lists:
                for nr, where in _numbers(lib, token, name, conds):
                    names_of.setdefault(nr, name)
                    if not where:
                        plain.setdefault(nr, action)
                        continue
                    rules = ruled.setdefault(nr, {})
                    key = tuple(sorted(where))
                    if rules.get(key, action) != action:
                        raise ProfileError(f"seccomp profile: two rules for {name} with the same arguments "
                                           "disagree on the action")
                    rules[key] = action
    decisions: dict[int, object] = {}
    for nr, rules in ruled.items():
        if nr not in plain:
            _check_exclusive(names_of[nr], rules)
            decisions[nr] = tuple(rules.items())
    decisions.update(plain)
    return decisions


def _check_exclusive(name: str, rules: dict[tuple, int]) -> None:
    items = list(rules.items())
    for i, (conds, action) in enumerate(items):
        for other, other_action in items[i + 1:]:
            if action != other_action and not any(_disjoint(a, b) for a in conds for b in other if a[0] == b[0]):
                raise ProfileError(f"seccomp profile: rules for {name} whose arguments can match at once decide "
                                   "differently; which one wins would be libseccomp's internal order: make them "
                                   "exclusive (e.g. SCMP_CMP_EQ on different values of one argument)")


def _disjoint(a: tuple, b: tuple) -> bool:
    """Can no argument value meet both conditions (on one argument, for 64- and 32-bit ABIs alike)?"""
    (_, op_a, value_a, two_a), (_, op_b, value_b, two_b) = sorted((a, b), key=lambda c: c[1])
    low = 0xFFFFFFFF
    if op_a == NE and op_b == EQ:
        return value_a == value_b
    if op_a == op_b == EQ:
        return (value_a ^ value_b) & low != 0
    if op_a == EQ and op_b == MASKED_EQ:  # arg & mask == datum
        return ((value_a & value_b) ^ two_b) & low != 0
    if op_a == op_b == MASKED_EQ:  # a bit both masks test, required to differ
        return (two_a ^ two_b) & value_a & value_b & low != 0
    return False


def _tables(spec: Resolved, per_arch: dict[int, dict], lib) -> dict[int, list[tuple[int, object]]]:
    """Audit arch -> [(first nr, decision)] over all 2^32 numbers. x32 shares x86_64's audit arch: its
    numbers are those with bit 30 set. Above the highest number the profile names on an architecture,
    -ENOSYS, as runc's stub does, so libc falls back (e.g. to an older call) instead of failing with
    EPERM; not when the default already allows or is ENOSYS."""
    enosys = not (spec.default in (RET_ALLOW, RET_LOG) or spec.default == RET_ERRNO | ENOSYS)
    x86_64, x32 = (lib.seccomp_arch_resolve_name(n) for n in (b"x86_64", b"x32"))
    bit = X32_SYSCALL_BIT  # x32's numbers are those with it set, above bit 31 as below
    regions = {AUDIT_ARCH_X86_64: [(x86_64, 0, bit), (x32, bit, 2 * bit), (x86_64, 2 * bit, 3 * bit),
                                   (x32, 3 * bit, 4 * bit)],
               AUDIT_ARCH_I386: [(AUDIT_ARCH_I386, 0, 4 * bit)]}
    tables = {}
    for audit, parts in regions.items():
        if not any(token in per_arch for token, _, _ in parts):
            continue
        spans, points = [], {}
        for token, start, end in parts:
            if token not in per_arch:
                spans.append((start, RET_KILL_PROCESS))  # a call of an ABI the profile does not list
                if end == 1 << 32:  # but -1, the number a tracer sets to skip a call: libseccomp's exception
                    points[end - 1] = spec.default
                continue
            spans.append((start, spec.default))
            highest = _highest(spec, token, lib)
            inside = {nr: d for nr, d in per_arch[token].items() if start <= nr < end}
            if enosys and highest is not None:
                # runc's stub comes first: a number above the highest gets -ENOSYS even where a rule
                # lands (i386's own socket calls, when the profile names only older calls there)
                points.update((nr, d) for nr, d in inside.items() if nr <= highest)
                if max(start, highest + 1) < end:
                    spans.append((max(start, highest + 1), RET_ERRNO | ENOSYS))
            else:
                points.update(inside)
        tables[audit] = _ranges(spans, points)
    return tables


def _highest(spec: Resolved, token: int, lib) -> int | None:
    numbers = [lib.seccomp_syscall_resolve_name_arch(token, name.encode()) for names, _, _ in spec.rules
               for name in names]
    return max((nr for nr in numbers if nr >= 0), default=None)


def _ranges(spans: list[tuple[int, object]], points: dict[int, object]) -> list[tuple[int, object]]:
    """``spans``: (first nr, decision) in order, the first at 0; ``points``: single numbers deciding otherwise.
    -> (first nr, decision) wherever the decision changes."""
    starts = sorted({start for start, _ in spans} | set(points) | {nr + 1 for nr in points if nr + 1 < 1 << 32})
    out: list[tuple[int, object]] = []
    span = 0
    for nr in starts:
        while span + 1 < len(spans) and spans[span + 1][0] <= nr:
            span += 1
        decision = points.get(nr, spans[span][1])
        if not out or out[-1][1] != decision:
            out.append((nr, decision))
    return out
