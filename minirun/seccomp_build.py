"""Profiles to BPF through libseccomp: what each field means, and the program built from it.

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
  them; runc splits them the same way). ``includes``/``excludes`` (``caps``,
  ``arches``, ``minKernel``) as Docker and podman evaluate them.
  A syscall name libseccomp does not know is skipped, as runc does. For one
  syscall, a rule without args wins over its rules with args (libseccomp's
  rule), and a rule whose action is the default action is dropped (runc).
- ``flags``: SECCOMP_FILTER_FLAG_TSYNC, _LOG, _SPEC_ALLOW, _TSYNC_ESRCH,
  passed to seccomp(2) when the child loads the filter.
- ``listenerPath``, ``listenerMetadata``, SCMP_ACT_NOTIFY,
  SECCOMP_FILTER_FLAG_NEW_LISTENER: refused with a clear error (minirun has
  no seccomp agent to hand the notification fd to).

Syscalls newer than the profile: as runc, a stub in front of libseccomp's
program returns ENOSYS for numbers above the highest one the profile names
(per architecture), so libc falls back (e.g. to an older call) instead of
failing with EPERM; not when the default action already allows, or is ENOSYS.
libseccomp is asked for a binary tree (SCMP_FLTATR_CTL_OPTIMIZE=2), which is
what keeps an allowed syscall's cost below runc's default linear filter.
"""

from __future__ import annotations

import errno
import os
import struct

from .seccomp_filter import ProfileError, SeccompFilter, kernel_version

EPERM, ENOSYS = 1, 38

# SECCOMP_RET_* (linux/seccomp.h), which libseccomp's SCMP_ACT_* values are.
RET_KILL_THREAD = 0x00000000
RET_KILL_PROCESS = 0x80000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000

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
AUDIT_ARCH_X86_64, AUDIT_ARCH_I386 = 0xC000003E, 0x40000003
X32_SYSCALL_BIT = 0x40000000

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


# ---------------------------------------------------------------- libseccomp

def build(profile, caps=(), kernel: tuple[int, int] | None = None) -> SeccompFilter:
    """minirun.seccomp.build_filter's work."""
    if profile == "default":
        from .seccomp_default import DEFAULT_PROFILE as profile
    spec = resolve(profile, caps, kernel)
    from ._seccomp import ffi, lib

    ctx = lib.seccomp_init(spec.default)
    if ctx == ffi.NULL:
        raise ProfileError(f"seccomp profile: libseccomp refused the default action {spec.default:#x}")
    try:
        arch_tokens = [lib.seccomp_arch_native()]
        for name in spec.arches:
            token = lib.seccomp_arch_resolve_name(name.lower().removeprefix("scmp_arch_").encode())
            if token == 0:
                raise ProfileError(f"seccomp profile: unknown architecture {name!r}")
            if token not in arch_tokens:
                _check(lib.seccomp_arch_add(ctx, token), f"add architecture {name}")
                arch_tokens.append(token)
        _check(lib.seccomp_attr_set(ctx, lib.SCMP_FLTATR_ACT_BADARCH, RET_KILL_PROCESS), "set the bad-arch action")
        _check(lib.seccomp_attr_set(ctx, lib.SCMP_FLTATR_CTL_OPTIMIZE, 2), "ask for a binary tree")
        for names, action, cond_lists in spec.rules:
            if action == spec.default:
                continue  # libseccomp refuses such a rule (EACCES); runc skips it too
            for name in names:
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr == lib.__NR_SCMP_ERROR:
                    continue  # unknown to libseccomp: skipped, as runc does
                for conds in cond_lists:
                    array = ffi.new("struct scmp_arg_cmp[]", conds or 1)
                    rc = lib.seccomp_rule_add_array(ctx, action, nr, len(conds), array)
                    if rc == -errno.EEXIST:  # the same arguments already have another action
                        raise ProfileError(f"seccomp profile: two rules for {name} with the same arguments "
                                           "disagree on the action")
                    _check(rc, f"add the rule for {name}")
        program = _export(ctx, lib)
    finally:
        lib.seccomp_release(ctx)
    stub = _enosys_stub(spec, arch_tokens, lib)
    program = stub + program
    if len(program) // 8 > 4096:  # BPF_MAXINSNS
        raise ProfileError(f"seccomp profile: the filter needs {len(program) // 8} instructions (the kernel's limit "
                           "is 4096)")
    return SeccompFilter(program, spec.flags)


def _check(rc: int, what: str) -> None:
    if rc < 0:
        raise ProfileError(f"seccomp profile: libseccomp could not {what}: {os.strerror(-rc)}")


def _export(ctx, lib) -> bytes:
    fd = os.memfd_create("minirun-seccomp", os.MFD_CLOEXEC)
    try:
        _check(lib.seccomp_export_bpf(ctx, fd), "export the filter")
        size = os.lseek(fd, 0, os.SEEK_END)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


# classic BPF opcodes (linux/bpf_common.h), for the stub
LD_W_ABS, JMP_JA, JMP_JEQ_K, JMP_JGT_K, JMP_JSET_K, RET_K = 0x20, 0x05, 0x15, 0x25, 0x45, 0x06


def _enosys_stub(spec: Resolved, arch_tokens: list, lib) -> bytes:
    """runc's -ENOSYS stub: syscalls above the highest one the profile names, per architecture."""
    if spec.default in (RET_ALLOW, RET_LOG) or spec.default == RET_ERRNO | ENOSYS:
        return b""
    highest: dict[int, int] = {}
    for names, _action, _conds in spec.rules:
        for name in names:
            for token in arch_tokens:
                nr = lib.seccomp_syscall_resolve_name_arch(token, name.encode())
                if nr >= 0:
                    highest[token] = max(highest.get(token, -1), nr)
    if not highest:
        return b""
    # x32 shares x86_64's audit arch: its numbers are those with bit 30 set
    x86_64, x32, i386 = (lib.seccomp_arch_resolve_name(n) for n in (b"x86_64", b"x32", b"x86"))
    code: list = []  # [opcode, jt, jf, k] (jumps may name a label) and label names

    def emit(op, k=0, jt=0, jf=0):
        code.append([op, jt, jf, k])

    emit(LD_W_ABS, 4)
    if x86_64 in highest or x32 in highest:
        emit(JMP_JEQ_K, AUDIT_ARCH_X86_64, 0, "next")
        emit(LD_W_ABS, 0)
        emit(JMP_JSET_K, X32_SYSCALL_BIT, "x32", 0)
        emit(JMP_JGT_K, highest.get(x86_64, 0xFFFFFFFF), "enosys", "filter")
        code.append("x32")
        emit(JMP_JGT_K, highest.get(x32, 0xFFFFFFFF), "enosys", "filter")
        code.append("next")
        emit(LD_W_ABS, 4)
    if i386 in highest:
        emit(JMP_JEQ_K, AUDIT_ARCH_I386, 0, "filter")
        emit(LD_W_ABS, 0)
        emit(JMP_JGT_K, highest[i386], "enosys", "filter")
    emit(JMP_JA, "filter")
    code.append("enosys")
    emit(RET_K, RET_ERRNO | ENOSYS)
    code.append("filter")
    return assemble(code)


def assemble(code: list) -> bytes:
    """``code``: [opcode, jt, jf, k] items and label names; a jump may name a label (forward only)."""
    labels, insns = {}, []
    for item in code:
        if isinstance(item, str):
            labels[item] = len(insns)
        else:
            insns.append(item)
    out = []
    for pc, (op, jt, jf, k) in enumerate(insns):
        if op == JMP_JA:
            k = labels[k] - pc - 1
        jt = labels[jt] - pc - 1 if isinstance(jt, str) else jt
        jf = labels[jf] - pc - 1 if isinstance(jf, str) else jf
        out.append(struct.pack("<HBBI", op, jt, jf, k))
    return b"".join(out)


# ---------------------------------------------------------------- reference interpreter

def evaluate(program: bytes, nr: int, args=(0,) * 6, arch: int = AUDIT_ARCH_X86_64) -> int:
    """Run ``program`` on one system call as the kernel would; returns the SECCOMP_RET_* value.

    Classic BPF as seccomp accepts it (loads from struct seccomp_data, scratch
    memory, ALU, jumps, returns). For tests and for explaining a decision.
    """
    data = struct.pack("<II", nr & 0xFFFFFFFF, arch) + struct.pack("<Q", 0) + b"".join(
        struct.pack("<Q", a & 0xFFFFFFFFFFFFFFFF) for a in (list(args) + [0] * 6)[:6])
    insns = [struct.unpack_from("<HBBI", program, i) for i in range(0, len(program), 8)]
    a = x = pc = 0
    mem = [0] * 16
    alu = {0x00: lambda a, v: a + v, 0x10: lambda a, v: a - v, 0x20: lambda a, v: a * v,
           0x30: lambda a, v: a // v, 0x40: lambda a, v: a | v, 0x50: lambda a, v: a & v,
           0x60: lambda a, v: a << v, 0x70: lambda a, v: a >> v, 0x90: lambda a, v: a % v,
           0xA0: lambda a, v: a ^ v}
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        cls, src = code & 0x07, x if code & 0x08 else k
        if code == 0x20:                       # ld [k]
            a = struct.unpack_from("<I", data, k)[0]
        elif code == 0x00:                     # ld #k
            a = k
        elif code == 0x60:                     # ld M[k]
            a = mem[k]
        elif code == 0x80:                     # ld #len
            a = len(data)
        elif code == 0x01:                     # ldx #k
            x = k
        elif code == 0x61:                     # ldx M[k]
            x = mem[k]
        elif code == 0x02:                     # st M[k]
            mem[k] = a
        elif code == 0x03:                     # stx M[k]
            mem[k] = x
        elif cls == 0x04:                      # alu
            a = (-a if code & 0xF0 == 0x80 else alu[code & 0xF0](a, src)) & 0xFFFFFFFF
        elif code == 0x05:                     # ja
            pc += k
        elif cls == 0x05:                      # conditional jumps
            test = {0x10: a == src, 0x20: a > src, 0x30: a >= src, 0x40: bool(a & src)}[code & 0xF0]
            pc += jt if test else jf
        elif code == 0x06:                     # ret #k
            return k
        elif code == 0x16:                     # ret a
            return a
        elif code == 0x07:                     # tax
            x = a
        elif code == 0x87:                     # txa
            a = x
        else:
            raise ValueError(f"unexpected BPF opcode {code:#x} at {pc - 1}")
