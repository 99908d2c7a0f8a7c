"""Docker-format seccomp profiles compiled to a classic BPF program, by hand.

Why hand-assembled BPF and not libseccomp: the program is plain data (bytes)
built here and handed to the C child, which only calls prctl(PR_SET_SECCOMP);
nothing new is linked into the extension and no -dev package is needed to
build it. Being data, it can be checked instruction by instruction in unit
tests (``evaluate`` below runs it like the kernel does), and it is built once
per process and cached (~1 ms, see ``program_for``). The price is that we own
the two things libseccomp would do for us: the syscall name table (generated
from the kernel headers: minirun/syscall_table.py) and the architecture checks.

Layout of the program (x86_64 only)::

    ld  arch;  jeq AUDIT_ARCH_X86_64 else KILL_PROCESS   (i386 `int 0x80` calls: other numbers)
    ld  nr;    jge 0x40000000        then KILL_PROCESS   (the x32 ABI: x86_64 arch, bit 30 set)
               jgt HIGHEST_KNOWN     then ENOSYS         (newer than our table: let libc fall back,
                                                          as runc does; the default action if it allows)
    binary search over runs of consecutive syscall numbers that share one outcome:
        jge pivot / ja right-half / left-half ...
        leaf: ret ACTION, or the syscall's argument rules then ret its fallback

Semantics of a profile (the subset of Docker's format we support):
``defaultAction``, ``defaultErrnoRet``, ``architectures`` / ``archMap`` (must
cover x86_64; the x86 and x32 sub-architectures are refused, see above),
``syscalls[]`` with ``names`` (or ``name``), ``action``, ``errnoRet``, ``args``
(``index``, ``value``, ``valueTwo``, ``op``: all conditions of a rule must hold)
and ``includes`` / ``excludes`` (``caps``, ``arches``, ``minKernel``) as
Docker evaluates them. For one syscall, its rules with arguments are tried in
file order, then its rule without arguments, then the default action (the
order libseccomp gives). Names unknown on x86_64 (``chown32``, ``s390_*``) are
skipped, as runc does. Refused with a clear error: ``SCMP_ACT_NOTIFY``,
``flags``, ``listenerPath``, two conditions on one argument in one rule.
"""

from __future__ import annotations

import os
import struct
from functools import lru_cache

from .errors import SpecError

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

RET_KILL_THREAD = 0x00000000
RET_KILL_PROCESS = 0x80000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000

EPERM, ENOSYS = 1, 38

# classic BPF opcodes (linux/bpf_common.h)
LD_W_ABS = 0x20      # A = seccomp_data[k] (32 bits)
ALU_AND_K = 0x54     # A &= k
JMP_JA = 0x05        # pc += k
JMP_JEQ_K = 0x15
JMP_JGT_K = 0x25
JMP_JGE_K = 0x35
RET_K = 0x06

# struct seccomp_data offsets
OFF_NR, OFF_ARCH = 0, 4


def _off_arg(index: int, high: bool) -> int:
    return 16 + 8 * index + (4 if high else 0)  # little endian: low word first


_ACTIONS_WITH_ERRNO = {"SCMP_ACT_ERRNO": RET_ERRNO, "SCMP_ACT_TRACE": RET_TRACE}
_ACTIONS = {
    "SCMP_ACT_ALLOW": RET_ALLOW,
    "SCMP_ACT_LOG": RET_LOG,
    "SCMP_ACT_TRAP": RET_TRAP,
    "SCMP_ACT_KILL": RET_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": RET_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": RET_KILL_PROCESS,
}
_OPS = ("SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_GT", "SCMP_CMP_GE",
        "SCMP_CMP_MASKED_EQ")
# Docker's "arches" use Go's names; libseccomp's SCMP_ARCH_* names in architectures/archMap.
GO_ARCH = "amd64"
_PROFILE_KEYS = {"defaultAction", "defaultErrnoRet", "architectures", "archMap", "syscalls", "flags",
                 "listenerPath", "listenerMetadata", "comment"}
_RULE_KEYS = {"names", "name", "action", "errnoRet", "args", "comment", "includes", "excludes"}
_FILTER_KEYS = {"caps", "arches", "minKernel"}


class ProfileError(SpecError):
    """A seccomp profile minirun cannot load; the message says which part and why."""


def _action(name, errno_ret, default_errno: int, where: str) -> int:
    if name in _ACTIONS:
        if errno_ret is not None:
            raise ProfileError(f"seccomp profile: {where}: errnoRet only goes with SCMP_ACT_ERRNO or SCMP_ACT_TRACE")
        return _ACTIONS[name]
    if name in _ACTIONS_WITH_ERRNO:
        value = default_errno if errno_ret is None else errno_ret
        if not isinstance(value, int) or not 0 <= value <= 0xFFFF:
            raise ProfileError(f"seccomp profile: {where}: errnoRet must be a number from 0 to 65535")
        return _ACTIONS_WITH_ERRNO[name] | value
    if name == "SCMP_ACT_NOTIFY":
        raise ProfileError(f"seccomp profile: {where}: SCMP_ACT_NOTIFY needs a listener, which minirun does not have")
    raise ProfileError(f"seccomp profile: {where}: unknown action {name!r} (use one of "
                       f"{', '.join(sorted(_ACTIONS) + sorted(_ACTIONS_WITH_ERRNO))})")


def kernel_version(release: str | None = None) -> tuple[int, int]:
    parts = (release or os.uname().release).split("-")[0].split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return (0, 0)


def _parse_version(text, where: str) -> tuple[int, int]:
    try:
        major, _, minor = str(text).partition(".")
        return int(major), int(minor.split(".")[0] or 0)
    except ValueError:
        raise ProfileError(f"seccomp profile: {where}: bad minKernel {text!r} (use e.g. \"4.8\")") from None


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


def _cap(name: str) -> str:
    name = str(name).upper()
    return name if name.startswith("CAP_") else "CAP_" + name


def _conditions(args, where: str) -> tuple:
    conds = []
    seen = set()
    for arg in args or ():
        if not isinstance(arg, dict):
            raise ProfileError(f"seccomp profile: {where}: each of args must be an object")
        index, op = arg.get("index"), arg.get("op")
        value, two = arg.get("value", 0), arg.get("valueTwo", 0)
        if not isinstance(index, int) or not 0 <= index <= 5:
            raise ProfileError(f"seccomp profile: {where}: argument index must be 0 to 5, not {index!r}")
        if op not in _OPS:
            raise ProfileError(f"seccomp profile: {where}: unknown argument op {op!r} (use one of {', '.join(_OPS)})")
        for v in (value, two):
            if not isinstance(v, int) or not 0 <= v < 1 << 64:
                raise ProfileError(f"seccomp profile: {where}: argument values must be unsigned 64-bit numbers")
        if index in seen:
            raise ProfileError(f"seccomp profile: {where}: two conditions on argument {index} in one rule "
                               "are not supported (split them into separate rules)")
        seen.add(index)
        conds.append((index, op, value, two))
    return tuple(conds)


def parse_profile(profile: dict, caps, kernel: tuple[int, int] | None = None, table: dict | None = None):
    """A Docker-format profile -> (default_action, {nr: [(conds, action), ...]}) for these caps.

    ``caps``: names (``CAP_SYS_ADMIN`` ...) that COMMAND keeps, for includes/excludes.
    """
    from .syscall_table import X86_64

    table = table or X86_64
    kernel = kernel or kernel_version()
    caps = frozenset(_cap(c) for c in caps)
    if not isinstance(profile, dict):
        raise ProfileError("seccomp profile: the top level must be a JSON object")
    unknown = set(profile) - _PROFILE_KEYS
    if unknown:
        raise ProfileError(f"seccomp profile: unsupported field(s) {', '.join(sorted(unknown))}")
    if profile.get("flags"):
        raise ProfileError("seccomp profile: flags are not supported")
    if profile.get("listenerPath") or profile.get("listenerMetadata"):
        raise ProfileError("seccomp profile: listenerPath (SCMP_ACT_NOTIFY) is not supported")
    arches = set(profile.get("architectures") or ())
    arches |= {m.get("architecture") for m in profile.get("archMap") or () if isinstance(m, dict)}
    if arches and "SCMP_ARCH_X86_64" not in arches:
        raise ProfileError(f"seccomp profile: it does not cover SCMP_ARCH_X86_64 (only {', '.join(sorted(arches))})")
    default_errno = profile.get("defaultErrnoRet", EPERM)
    if "defaultAction" not in profile:
        raise ProfileError("seccomp profile: defaultAction is missing")
    default = _action(profile["defaultAction"], profile.get("defaultErrnoRet"), EPERM, "defaultAction")
    conditional: dict[int, list] = {}
    unconditional: dict[int, int] = {}
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
        action = _action(rule["action"], rule.get("errnoRet"), default_errno, where)
        conds = _conditions(rule.get("args"), where)
        if not _selected(rule, caps, kernel, where):
            continue
        for name in names:
            nr = table.get(name)
            if nr is None:
                continue  # not a syscall on x86_64
            if conds:
                conditional.setdefault(nr, []).append((conds, action))
            else:
                unconditional.setdefault(nr, action)
    rules = {}
    for nr in set(conditional) | set(unconditional):
        fallback = unconditional.get(nr, default)
        if fallback == default and nr not in conditional:
            continue
        rules[nr] = (tuple(conditional.get(nr, ())), fallback)
    return default, rules


# ---------------------------------------------------------------- assembler

class _Asm:
    """Instructions with symbolic jump targets, resolved to offsets at the end."""

    def __init__(self):
        self.insns: list = []  # [code, jt, jf, k]; jt/jf/k of jumps may be label names
        self.labels: dict[str, int] = {}
        self.n = 0

    def label(self, name: str) -> None:
        self.labels[name] = len(self.insns)

    def new(self) -> str:
        self.n += 1
        return f"L{self.n}"

    def emit(self, code: int, k=0, jt=0, jf=0) -> None:
        self.insns.append([code, jt, jf, k])

    def bytes(self) -> bytes:
        out = []
        for pc, (code, jt, jf, k) in enumerate(self.insns):
            if code == JMP_JA and isinstance(k, str):
                k = self.labels[k] - pc - 1
            jt = self.labels[jt] - pc - 1 if isinstance(jt, str) else jt
            jf = self.labels[jf] - pc - 1 if isinstance(jf, str) else jf
            if not (0 <= jt <= 255 and 0 <= jf <= 255 and 0 <= k < 1 << 32):
                raise AssertionError(f"BPF jump out of range at {pc}")  # a bug in the layout below
            out.append(struct.pack("<HBBI", code, jt, jf, k))
        return b"".join(out)


def _emit_cond(asm: _Asm, cond, fail: str) -> None:
    """Fall through when the 64-bit argument satisfies ``cond``, else jump to ``fail``."""
    index, op, value, two = cond
    hi_v, lo_v = value >> 32, value & 0xFFFFFFFF
    ok = asm.new()
    hi, lo = _off_arg(index, True), _off_arg(index, False)
    if op == "SCMP_CMP_MASKED_EQ":
        m_hi, m_lo, d_hi, d_lo = hi_v, lo_v, two >> 32, two & 0xFFFFFFFF
        if m_hi or d_hi:
            asm.emit(LD_W_ABS, hi)
            asm.emit(ALU_AND_K, m_hi)
            asm.emit(JMP_JEQ_K, d_hi, 0, fail)
        asm.emit(LD_W_ABS, lo)
        asm.emit(ALU_AND_K, m_lo)
        asm.emit(JMP_JEQ_K, d_lo, 0, fail)
    elif op == "SCMP_CMP_EQ":
        asm.emit(LD_W_ABS, hi)
        asm.emit(JMP_JEQ_K, hi_v, 0, fail)
        asm.emit(LD_W_ABS, lo)
        asm.emit(JMP_JEQ_K, lo_v, 0, fail)
    elif op == "SCMP_CMP_NE":
        asm.emit(LD_W_ABS, hi)
        asm.emit(JMP_JEQ_K, hi_v, 0, ok)
        asm.emit(LD_W_ABS, lo)
        asm.emit(JMP_JEQ_K, lo_v, fail, 0)
    else:
        # unsigned 64-bit order: decided by the high words unless they are equal
        asm.emit(LD_W_ABS, hi)
        if op in ("SCMP_CMP_GT", "SCMP_CMP_GE"):
            asm.emit(JMP_JGT_K, hi_v, ok, 0)
            asm.emit(JMP_JEQ_K, hi_v, 0, fail)
            asm.emit(LD_W_ABS, lo)
            asm.emit(JMP_JGT_K if op == "SCMP_CMP_GT" else JMP_JGE_K, lo_v, 0, fail)
        else:  # LT, LE
            asm.emit(JMP_JGE_K, hi_v, 0, ok)
            asm.emit(JMP_JEQ_K, hi_v, 0, fail)
            asm.emit(LD_W_ABS, lo)
            asm.emit(JMP_JGE_K if op == "SCMP_CMP_LT" else JMP_JGT_K, lo_v, fail, 0)
    asm.label(ok)


def _emit_leaf(asm: _Asm, outcome) -> None:
    kind, value = outcome
    if kind == "ret":
        asm.emit(RET_K, value)
        return
    conditional, fallback = value
    for conds, action in conditional:
        fail = asm.new()
        for cond in conds:
            _emit_cond(asm, cond, fail)
        asm.emit(RET_K, action)
        asm.label(fail)
    asm.emit(RET_K, fallback)


def _emit_tree(asm: _Asm, runs) -> None:
    """runs: [(first_nr, outcome)], sorted, covering every number up to the highest known one."""
    if len(runs) == 1:
        _emit_leaf(asm, runs[0][1])
        return
    mid = len(runs) // 2
    right = asm.new()
    asm.emit(JMP_JGE_K, runs[mid][0], 0, 1)  # nr >= pivot: take the `ja` to the right half
    asm.emit(JMP_JA, right)
    _emit_tree(asm, runs[:mid])
    asm.label(right)  # A still holds nr: only leaves load arguments, and every leaf returns
    _emit_tree(asm, runs[mid:])


def assemble(default: int, rules: dict, highest: int) -> bytes:
    """The BPF program (struct sock_filter[] as bytes) for a parsed profile."""
    asm = _Asm()
    asm.emit(LD_W_ABS, OFF_ARCH)
    asm.emit(JMP_JEQ_K, AUDIT_ARCH_X86_64, 1, 0)
    asm.emit(RET_K, RET_KILL_PROCESS)
    asm.emit(LD_W_ABS, OFF_NR)
    asm.emit(JMP_JGE_K, X32_SYSCALL_BIT, 0, 1)
    asm.emit(RET_K, RET_KILL_PROCESS)
    beyond = default if default in (RET_ALLOW, RET_LOG) else RET_ERRNO | ENOSYS
    asm.emit(JMP_JGT_K, highest, 0, 1)
    asm.emit(RET_K, beyond)
    runs: list = []
    for nr in range(highest + 1):
        outcome = ("rules", rules[nr]) if nr in rules and rules[nr][0] else \
            ("ret", rules[nr][1] if nr in rules else default)
        if runs and outcome[0] == "ret" and runs[-1][1] == outcome:
            continue
        runs.append((nr, outcome))
    _emit_tree(asm, runs)
    program = asm.bytes()
    if len(program) // 8 > 4096:  # BPF_MAXINSNS
        raise ProfileError(f"seccomp profile: the filter needs {len(program) // 8} instructions (the kernel's limit "
                           "is 4096)")
    return program


def compile_profile(profile: dict, caps, kernel: tuple[int, int] | None = None) -> bytes:
    from .syscall_table import X86_64

    default, rules = parse_profile(profile, caps, kernel)
    return assemble(default, rules, max(X86_64.values()))


@lru_cache(maxsize=8)
def default_program(caps: frozenset) -> bytes:
    """The default filter for a COMMAND keeping ``caps``: built once per process."""
    from .seccomp_default import DEFAULT_PROFILE

    return compile_profile(DEFAULT_PROFILE, caps)


def load_profile_file(path: str) -> dict:
    import json

    try:
        with open(path) as f:
            return json.load(f)
    except OSError as err:
        raise ProfileError(f"seccomp profile {path}: {err.strerror}") from None
    except ValueError as err:
        raise ProfileError(f"seccomp profile {path}: not valid JSON: {err}") from None


# ---------------------------------------------------------------- reference interpreter

def evaluate(program: bytes, nr: int, args=(0,) * 6, arch: int = AUDIT_ARCH_X86_64) -> int:
    """Run ``program`` on one system call as the kernel would; returns the SECCOMP_RET_* value.

    For tests and for explaining a decision; the kernel runs the real thing.
    """
    data = struct.pack("<II", nr & 0xFFFFFFFF, arch) + struct.pack("<Q", 0) + b"".join(
        struct.pack("<Q", a) for a in (list(args) + [0] * 6)[:6])
    insns = [struct.unpack_from("<HBBI", program, i) for i in range(0, len(program), 8)]
    a, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == LD_W_ABS:
            a = struct.unpack_from("<I", data, k)[0]
        elif code == ALU_AND_K:
            a &= k
        elif code == JMP_JA:
            pc += k
        elif code == JMP_JEQ_K:
            pc += jt if a == k else jf
        elif code == JMP_JGT_K:
            pc += jt if a > k else jf
        elif code == JMP_JGE_K:
            pc += jt if a >= k else jf
        elif code == RET_K:
            return k
        else:
            raise ValueError(f"unexpected BPF opcode {code:#x} at {pc - 1}")


# ---------------------------------------------------------------- the precompiled default

PRECOMPILED = "minirun/seccomp_precompiled.py"


def write_precompiled(path: str = PRECOMPILED) -> None:
    """Regenerate the default filter for Docker's default capabilities (`python -m minirun.seccomp`).

    A CLI run is one process, so "build once per process" would still cost ~2 ms
    (imports plus compile) on every `minirun run`; the default case loads these
    bytes instead. tests/unit/test_seccomp.py fails when they go stale.
    """
    from .security import DEFAULT_CAPS
    from .seccomp_default import DEFAULT_PROFILE

    program = compile_profile(DEFAULT_PROFILE, DEFAULT_CAPS, kernel=(4, 8))
    lines = [repr(program[i:i + 64]) for i in range(0, len(program), 64)]
    with open(path, "w") as f:
        f.write('"""Docker\'s default seccomp profile compiled for Docker\'s default capabilities on\n'
                'kernels >= 4.8 (generated by `python -m minirun.seccomp`; do not edit)."""\n\n'
                "DEFAULT_PROGRAM = (\n" + "".join(f"    {line}\n" for line in lines) + ")\n")


if __name__ == "__main__":
    write_precompiled()
    print(f"wrote {PRECOMPILED}")
