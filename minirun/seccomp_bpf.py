"""Classic BPF for seccomp: the opcodes, an assembler, the compiler of decision tables, an interpreter.

``compile_program`` turns, per audit architecture, what each system call number
decides into one program: the architecture check, then a binary search over the
syscall-number ranges that decide alike, whose leaves share one return per
decision. Docker's default profile comes to 165 ranges for x86_64 and x32 and
123 for i386: 521 instructions, ~8 comparisons deep. libseccomp's binary tree
(SCMP_FLTATR_CTL_OPTIMIZE=2) compares each number on its own: 1268 instructions,
which the kernel checks and JIT-compiles at every container's start (0.22 ms
here, against 0.09 ms).

A decision is a SECCOMP_RET_* value, or for a call with argument rules a tuple of
``(conditions, action)`` tried in order, the first that holds deciding, else
``fallback``: conditions are ``(index, op, value, value_two)`` with libseccomp's
SCMP_CMP_* ops (1 NE, 2 LT, 3 LE, 4 EQ, 5 GE, 6 GT, 7 MASKED_EQ: arg & value ==
value_two), all of which must hold. On a 32-bit ABI only the low 32 bits of an
argument are compared, as libseccomp does.
"""

from __future__ import annotations

import struct

# SECCOMP_RET_* (linux/seccomp.h), which libseccomp's SCMP_ACT_* values are.
RET_KILL_THREAD = 0x00000000
RET_KILL_PROCESS = 0x80000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000

AUDIT_ARCH_X86_64, AUDIT_ARCH_I386 = 0xC000003E, 0x40000003
X32_SYSCALL_BIT = 0x40000000

# classic BPF opcodes (linux/bpf_common.h)
LD_W_ABS, ALU_AND_K, JMP_JA, JMP_JEQ_K, JMP_JGT_K, JMP_JGE_K, JMP_JSET_K, RET_K = (
    0x20, 0x54, 0x05, 0x15, 0x25, 0x35, 0x45, 0x06)

# offsets in struct seccomp_data: nr, arch, instruction_pointer, args[6] (little-endian)
NR_OFFSET, ARCH_OFFSET = 0, 4
NE, LT, LE, EQ, GE, GT, MASKED_EQ = range(1, 8)
JUMP_MAX = 255  # jt and jf are 8 bits; farther goes through a JMP_JA


def assemble(code: list) -> bytes:
    """``code``: [opcode, jt, jf, k] items and label names; a jump may name a label (forward only)."""
    return b"".join(struct.pack("<HBBI", *insn) for insn in _resolve(code))


def _resolve(code: list) -> list[tuple]:
    labels, insns = {}, []
    for item in code:
        if isinstance(item, str):
            labels[item] = len(insns)
        else:
            insns.append(item)
    out = []
    for pc, (op, jt, jf, k) in enumerate(insns):
        if op == JMP_JA:
            k = labels[k] - pc - 1 if isinstance(k, str) else k
        jt = labels[jt] - pc - 1 if isinstance(jt, str) else jt
        jf = labels[jf] - pc - 1 if isinstance(jf, str) else jf
        if not (0 <= jt <= JUMP_MAX and 0 <= jf <= JUMP_MAX):
            raise ValueError(f"BPF jump out of range at {pc}")
        out.append((op, jt, jf, k))
    return out


# ---------------------------------------------------------------- the compiler

def compile_program(tables: dict[int, list[tuple[int, object]]], fallback: int, bad_arch: int) -> bytes:
    """``tables``: audit arch -> [(first nr, decision)], sorted, the first at 0: each decision holds up to
    the next entry's number. ``fallback``: what a call whose argument rules all miss gets (the profile's
    default). Calls from an architecture not in ``tables`` get ``bad_arch``. The 32-bit ABIs are i386
    and x32, whose numbers are x86_64's audit arch with X32_SYSCALL_BIT set."""
    head: list = [[LD_W_ABS, 0, 0, ARCH_OFFSET]]
    bodies: list[list[tuple]] = []
    for arch, ranges in tables.items():
        # jeq arch -> fall into the jump to its body; else skip that jump
        head += [[JMP_JEQ_K, 0, 1, arch], [JMP_JA, 0, 0, f"arch{len(bodies)}"]]
        narrow_from = 0 if arch == AUDIT_ARCH_I386 else X32_SYSCALL_BIT
        bodies.append([(LD_W_ABS, 0, 0, NR_OFFSET), *_search(ranges, fallback, narrow_from)])
    head.append([RET_K, 0, 0, bad_arch])
    code: list = head
    for i, body in enumerate(bodies):
        code += [f"arch{i}", *body]
    return assemble(code)


def _search(ranges: list[tuple[int, object]], fallback: int, narrow_from: int) -> list[tuple]:
    """A binary search over ``ranges`` (the accumulator holds the syscall number) ending in each decision."""
    return _emit(_split(ranges), fallback, narrow_from)


def _split(ranges: list[tuple[int, object]]) -> tuple:
    """A balanced tree: a leaf is (first nr, decision), a node (first nr above, below, above)."""
    if len(ranges) == 1:
        return ranges[0]
    middle = len(ranges) // 2
    return ranges[middle][0], _split(ranges[:middle]), _split(ranges[middle:])


def _emit(tree: tuple, fallback: int, narrow_from: int) -> list[tuple]:
    if len(tree) == 2:
        return _decide(tree[1], fallback, wide=tree[0] < narrow_from)
    if _shared_size(tree, fallback) <= SHARED_SPAN:
        return _shared(tree, fallback, narrow_from)
    key, below, above = tree
    below_code, above_code = _emit(below, fallback, narrow_from), _emit(above, fallback, narrow_from)
    if len(below_code) <= JUMP_MAX:
        return [(JMP_JGE_K, len(below_code), 0, key), *below_code, *above_code]
    return [(JMP_JGE_K, 0, 1, key), (JMP_JA, 0, 0, len(below_code)), *below_code, *above_code]


# A subtree this long or shorter jumps to one return per decision at its end instead of ending each
# leaf in its own: ~40% fewer instructions for Docker's profile. Its jumps then reach that far.
SHARED_SPAN = 200


def _shared_size(tree: tuple, fallback: int) -> int:
    returns: set = set()

    def size(node) -> int:
        if len(node) == 3:
            return 1 + size(node[1]) + size(node[2])
        if isinstance(node[1], int):
            returns.add(node[1])
            return 0
        return len(_decide(node[1], fallback, wide=True))

    return size(tree) + len(returns)


def _shared(tree: tuple, fallback: int, narrow_from: int) -> list[tuple]:
    code: list = []
    returns: dict[int, str] = {}

    def target(node):
        if len(node) == 2 and isinstance(node[1], int):
            return returns.setdefault(node[1], f"return{len(returns)}")
        return None  # code of its own, placed where the jump lands

    def walk(node):
        if len(node) == 2:
            code.extend(_decide(node[1], fallback, wide=node[0] < narrow_from))
            return
        key, below, above = node
        to_below, to_above = target(below), target(above)
        code.append([JMP_JGE_K, to_above or f"above{key}", to_below or 0, key])
        if to_below is None:
            walk(below)
        if to_above is None:
            code.append(f"above{key}")
            walk(above)

    walk(tree)
    for decision, label in returns.items():
        code += [label, [RET_K, 0, 0, decision]]
    return _resolve(code)


def _decide(decision, fallback: int, wide: bool) -> list[tuple]:
    if isinstance(decision, int):
        return [(RET_K, 0, 0, decision)]
    code: list = []
    for i, (conditions, action) in enumerate(decision):
        miss = f"rule{i + 1}"
        for n, condition in enumerate(conditions):
            code += _condition(condition, miss, f"hold{i}.{n}", wide)
        code += [[RET_K, 0, 0, action], miss]
    code.append([RET_K, 0, 0, fallback])
    return _resolve(code)


def _condition(condition: tuple, miss: str, hold: str, wide: bool) -> list:
    """Code that falls through when ``condition`` holds and jumps to ``miss`` when not (it may use ``hold``)."""
    index, op, value, two = condition
    low, high = 16 + 8 * index, 20 + 8 * index
    halves = ((high, value >> 32, two >> 32), (low, value & 0xFFFFFFFF, two & 0xFFFFFFFF)) if wide else \
        ((low, value & 0xFFFFFFFF, two & 0xFFFFFFFF),)
    code: list = []
    last = len(halves) - 1
    for n, (offset, v, v2) in enumerate(halves):
        code.append([LD_W_ABS, 0, 0, offset])
        final = n == last
        if op == EQ:
            code.append([JMP_JEQ_K, 0, miss, v])
        elif op == MASKED_EQ:
            code += [[ALU_AND_K, 0, 0, v], [JMP_JEQ_K, 0, miss, v2]]
        elif op == NE:  # differs in the high half: holds; equal there: the low half decides
            code.append([JMP_JEQ_K, miss, 0, v] if final else [JMP_JEQ_K, 0, hold, v])
        else:  # an unsigned compare: the high half decides unless equal, then the low half
            greater_holds = op in (GT, GE)
            if final:
                jump = JMP_JGT_K if op in (GT, LE) else JMP_JGE_K
                code.append([jump, 0, miss, v] if greater_holds else [jump, miss, 0, v])
            else:
                code += [[JMP_JGT_K, hold if greater_holds else miss, 0, v], [JMP_JEQ_K, 0, miss if greater_holds
                                                                              else hold, v]]
    code.append(hold)
    return code


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
