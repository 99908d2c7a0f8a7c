"""cgroup v2 devices: the rule list compiled to a BPF_PROG_TYPE_CGROUP_DEVICE program.

cgroup v2 has no devices controller files; the kernel instead runs the BPF
programs attached to the cgroup (attach type BPF_CGROUP_DEVICE) on every open and
mknod of a device node, and refuses it if one returns 0. The program here is the
one runc's devicefilter and crun's ebpf.c generate, for the same rules:

    r2 = ctx->access_type & 0xffff      type: 1 block, 2 char
    r3 = ctx->access_type >> 16         access asked: 1 mknod, 2 read, 4 write
    r4 = ctx->major
    r5 = ctx->minor
    for each rule, last first:          (the last rule that matches decides, as in v1)
        if type differs:      next      (omitted for type "a")
        if r3 & ~access:      next      (omitted for rwm; an allow must cover all that is
                                         asked, a deny matches if it covers any of it)
        if major differs:     next      (omitted for *)
        if minor differs:     next      (omitted for *)
        return allow
    return 0 if the list is an allow-list, else 1

A type "a" rule matches everything, so rules before the last one can never decide:
they are dropped, and that rule's verdict becomes the default. The program is
plain data (bytes of struct bpf_insn); csrc/devices.c loads and attaches it.
"""

from __future__ import annotations

import struct

# struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
_CTX_ACCESS_TYPE, _CTX_MAJOR, _CTX_MINOR = 0, 4, 8
DEV_BLOCK, DEV_CHAR = 1, 2  # BPF_DEVCG_DEV_*
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4  # BPF_DEVCG_ACC_*
_TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}
_ACCESS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}

# Opcodes (linux/bpf_common.h, linux/bpf.h).
LDX_MEM_W = 0x61  # dst = *(u32 *)(src + off)
ALU_AND_K = 0x54  # dst &= imm (32-bit)
ALU_RSH_K = 0x74  # dst >>= imm (32-bit)
ALU_MOV_X = 0xBC  # dst = src (32-bit)
ALU64_MOV_K = 0xB7  # dst = imm
JEQ_K = 0x15  # if dst == imm: pc += off
JNE_K = 0x55  # if dst != imm: pc += off
JNE_X = 0x5D  # if dst != src: pc += off
EXIT = 0x95
R0, R1, R2, R3, R4, R5 = range(6)


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One struct bpf_insn: u8 code, u8 dst:4 src:4 (dst in the low nibble), s16 off, s32 imm."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def access_bits(access: str) -> int:
    bits = 0
    for c in access:
        bits |= _ACCESS[c]
    return bits


def effective_rules(rules) -> tuple[bool, list]:
    """(default verdict, the rules after the last type "a" rule) for ``rules`` in order."""
    default_allow = False
    kept: list = []
    for rule in rules:
        if rule.type == "a":
            if rule.access != "rwm":
                raise ValueError(f"a type 'a' device rule must be for rwm: {rule.v1_line()}")
            default_allow, kept = rule.allow, []
        elif rule.type in _TYPES:
            kept.append(rule)
        else:
            raise ValueError(f"unknown device type {rule.type!r} in {rule.v1_line()}")
    return default_allow, kept


def _rule_block(rule) -> list[tuple]:
    """The checks of one rule as (code, dst, src, imm) with off = "skip to the next rule"."""
    checks = [(JNE_K, R2, 0, _TYPES[rule.type])]
    bits = access_bits(rule.access)
    if bits != ACC_MKNOD | ACC_READ | ACC_WRITE:
        checks += [(ALU_MOV_X, R1, R3, 0), (ALU_AND_K, R1, 0, bits)]
        # An allow must cover all that is asked; a deny refuses as soon as it covers part of it.
        checks.append((JNE_X, R1, R3, 0) if rule.allow else (JEQ_K, R1, 0, 0))
    if rule.major is not None:
        checks.append((JNE_K, R4, 0, rule.major))
    if rule.minor is not None:
        checks.append((JNE_K, R5, 0, rule.minor))
    return checks


def program(rules) -> bytes:
    """The BPF program enforcing ``rules`` (DeviceRule records, in order)."""
    default_allow, kept = effective_rules(rules)
    out = [
        insn(LDX_MEM_W, R2, R1, _CTX_ACCESS_TYPE),
        insn(ALU_AND_K, R2, imm=0xFFFF),
        insn(LDX_MEM_W, R3, R1, _CTX_ACCESS_TYPE),
        insn(ALU_RSH_K, R3, imm=16),
        insn(LDX_MEM_W, R4, R1, _CTX_MAJOR),
        insn(LDX_MEM_W, R5, R1, _CTX_MINOR),
    ]
    for rule in reversed(kept):
        checks = _rule_block(rule)
        block_len = len(checks) + 2  # + mov r0, exit
        for i, (code, dst, src, imm) in enumerate(checks):
            # A jump skips the rest of this block: offsets count from the next instruction.
            off = block_len - (i + 1) if code in (JEQ_K, JNE_K, JNE_X) else 0
            out.append(insn(code, dst, src, off, imm))
        out += [insn(ALU64_MOV_K, R0, imm=1 if rule.allow else 0), insn(EXIT)]
    out += [insn(ALU64_MOV_K, R0, imm=1 if default_allow else 0), insn(EXIT)]
    return b"".join(out)


def evaluate(prog: bytes, dev_type: str, major: int, minor: int, access: str) -> bool:
    """Run ``prog`` on one access, as the kernel would (the subset of eBPF program() emits).

    For the unit tests: proves the translation without a kernel.
    """
    regs: list = [0] * 11
    regs[R1] = "ctx"  # the only pointer: program() reads it in its prologue only
    ctx = struct.pack("<III", (access_bits(access) << 16) | _TYPES[dev_type], major, minor)
    insns = [struct.unpack("<BBhi", prog[i:i + 8]) for i in range(0, len(prog), 8)]
    pc = 0
    while True:
        code, regs_byte, off, imm = insns[pc]
        dst, src = regs_byte & 0xF, regs_byte >> 4
        pc += 1
        if code == LDX_MEM_W:
            assert regs[src] == "ctx", "load from something other than the context"
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == ALU_AND_K:
            regs[dst] = (regs[dst] & imm) & 0xFFFFFFFF
        elif code == ALU_RSH_K:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code == ALU_MOV_X:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif code == ALU64_MOV_K:
            regs[dst] = imm
        elif code == JEQ_K:
            pc += off if regs[dst] == imm else 0
        elif code == JNE_K:
            pc += off if regs[dst] != imm else 0
        elif code == JNE_X:
            pc += off if regs[dst] != regs[src] else 0
        elif code == EXIT:
            return regs[R0] != 0
        else:
            raise ValueError(f"unexpected opcode {code:#x}")
