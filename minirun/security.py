"""What COMMAND may do: capabilities, no_new_privs, seccomp, masked paths, user namespaces.

Parsing and policy live here, as data; the child applies it in C right before
execve (csrc/security.c), in runc's order:

    (still root, all capabilities)  drop the bounding set; keep-caps on;
                                    seccomp now if no_new_privs is off (loading
                                    it then needs CAP_SYS_ADMIN, still held)
    setgroups, setgid, setuid       (init.c, unchanged)
    (as the target user)            capset effective/permitted/inheritable,
                                    clear ambient, no_new_privs, seccomp last

The defaults follow Docker: its 14 capabilities, no_new_privs on, its seccomp
profile (minirun/seccomp_default.py), runc's masked and read-only paths.
Importing this module costs nothing extra on the run path: the default set is
precomputed as a bit mask, and python-prctl (libcap) is imported only to check
an explicit ``--cap-add`` against what the host grants minirun.
"""

from __future__ import annotations

import os

from .errors import HostError, SpecError
from .mounts import OP_MASK, OP_READONLY
from .policy import DEFAULT_CAP_MASK, DEFAULT_CAPS, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS  # noqa: F401

# linux/capability.h: kernel ABI, never renumbered. (Checked against libcap's
# names through python-prctl in tests/unit/test_security.py.)
CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
)
CAP_NUMBER = {"CAP_" + name: n for n, name in enumerate(CAPABILITIES)}
ALL_CAPS = tuple(CAP_NUMBER)

PRIVILEGED_WARNING = ("--privileged turns off the container's security: all capabilities, "
                      "no seccomp filter, no_new_privs off, /proc and /sys paths unmasked and writable, every device allowed")



def normalize_cap(name: str, what: str = "capability") -> str:
    """``net_raw``, ``NET_RAW``, ``CAP_NET_RAW`` -> ``CAP_NET_RAW``; ``all`` -> ``ALL``."""
    upper = str(name).strip().upper()
    if upper == "ALL":
        return "ALL"
    full = upper if upper.startswith("CAP_") else "CAP_" + upper
    if full not in CAP_NUMBER:
        raise SpecError(f"invalid {what} {name!r}: unknown capability (known: ALL, "
                        f"{', '.join(c[4:] for c in ALL_CAPS)})")
    return full


def tweak_caps(cap_add=(), cap_drop=(), base=DEFAULT_CAPS) -> tuple[str, ...]:
    """Docker's rules for --cap-add / --cap-drop (moby TweakCapabilities).

    ``--cap-add ALL``: every capability but the dropped ones; ``--cap-drop ALL``:
    only the added ones; otherwise the base set minus the dropped plus the added.
    """
    adds = [normalize_cap(c, "--cap-add value") for c in cap_add]
    drops = [normalize_cap(c, "--cap-drop value") for c in cap_drop]
    if not adds and not drops:
        return tuple(base)
    if "ALL" in adds:
        caps = [c for c in ALL_CAPS if c not in drops]
    elif "ALL" in drops:
        caps = [c for c in adds if c != "ALL"]
    else:
        caps = [c for c in base if c not in drops] + adds
    return tuple(sorted(set(caps), key=CAP_NUMBER.__getitem__))


def cap_mask(caps) -> int:
    mask = 0
    for cap in caps:
        mask |= 1 << CAP_NUMBER[cap]
    return mask


def last_cap() -> int:
    """The kernel's highest capability number (/proc/sys/kernel/cap_last_cap), read once."""
    global _LAST_CAP
    if _LAST_CAP is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap") as f:
                _LAST_CAP = int(f.read())
        except (OSError, ValueError):
            _LAST_CAP = len(CAPABILITIES) - 1
    return _LAST_CAP


_LAST_CAP: int | None = None


def caps_of_mask(mask: int) -> tuple[str, ...]:
    return tuple(c for c in ALL_CAPS if mask >> CAP_NUMBER[c] & 1)


def check_host_grants(caps) -> None:
    """Explicitly requested capabilities must be in minirun's own bounding set.

    Uses python-prctl (libcap), imported only here: a default run never pays for it.
    """
    try:
        import prctl
    except ImportError:  # python-prctl missing: the child's capset will fail instead
        return
    missing = [c for c in caps if not prctl.capbset_read(CAP_NUMBER[c])]
    if missing:
        raise HostError(f"this host does not grant {', '.join(missing)} to minirun (not in its bounding set), "
                        "so no container can have it")


def parse_security_opt(items) -> dict:
    """``--security-opt`` values -> {"no_new_privileges": bool, "seccomp": ...}.

    ``no-new-privileges[=true|false]``, ``seccomp=unconfined``, ``seccomp=FILE``
    (a Docker, containers-common or OCI JSON profile; read here, so errors show before anything starts).
    """
    out: dict = {}
    for item in items:
        key, eq, value = str(item).partition("=")
        key = key.strip()
        if key in ("no-new-privileges", "no_new_privileges"):
            if not eq or value.lower() in ("true", "1", "yes"):
                out["no_new_privileges"] = True
            elif value.lower() in ("false", "0", "no"):
                out["no_new_privileges"] = False
            else:
                raise SpecError(f"invalid --security-opt {item!r}: no-new-privileges takes true or false")
        elif key == "seccomp" and eq and value:
            if value == "unconfined":
                out["seccomp"] = None
            else:
                from .seccomp import load_profile_file
                from .seccomp_build import resolve

                out["seccomp"] = load_profile_file(value)
                resolve(out["seccomp"], ALL_CAPS)  # a bad profile fails here, before anything starts
        else:
            raise SpecError(f"invalid --security-opt {item!r}: use no-new-privileges[=false], seccomp=unconfined "
                            "or seccomp=PROFILE.json")
    return out


# ---------------------------------------------------------------- user namespaces

def parse_id_map(text: str) -> tuple[int, int, int]:
    """``--userns-map CONTAINER:HOST:SIZE`` -> (container_id, host_id, size)."""
    try:
        inside, host, size = (int(p) for p in str(text).split(":"))
    except ValueError:
        raise SpecError(f"invalid --userns-map value {text!r}: use CONTAINER:HOST:SIZE, e.g. 0:100000:65536") from None
    if inside < 0 or host < 0 or size <= 0 or host + size > 1 << 32 or inside + size > 1 << 32:
        raise SpecError(f"invalid --userns-map value {text!r}: ids must be non-negative and the size positive")
    return inside, host, size


def subordinate_range(user: str = "minirun", path: str = "/etc/subuid") -> tuple[int, int] | None:
    """(first, count) of ``user``'s entry in /etc/subuid or /etc/subgid (first match)."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] == user:
            try:
                return int(parts[1]), int(parts[2])
            except ValueError:
                raise HostError(f"{path}: bad entry {line!r}") from None
    return None


SUBID_USERS = ("minirun", "root")


def default_id_maps(subuid: str = "/etc/subuid", subgid: str = "/etc/subgid"):
    """``--userns`` without a map: container 0..N-1 -> the first of SUBID_USERS' subordinate ranges."""
    for user in SUBID_USERS:
        uids, gids = subordinate_range(user, subuid), subordinate_range(user, subgid)
        if uids and gids:
            return [(0, uids[0], uids[1])], [(0, gids[0], gids[1])]
    raise HostError(f"--userns needs a subordinate id range for one of {', '.join(SUBID_USERS)} in {subuid} and "
                    f"{subgid} (e.g. 'minirun:100000:65536' in both), or an explicit --userns-map 0:100000:65536")


def id_map_text(mappings) -> str:
    return "".join(f"{inside} {host} {size}\n" for inside, host, size in mappings)


def with_userns(namespaces: tuple[str, ...], spec) -> tuple[str, ...]:
    """The namespaces to create: a user namespace too when the spec maps ids."""
    if spec.uid_mappings or spec.gid_mappings:
        if not (spec.uid_mappings and spec.gid_mappings):
            raise SpecError("a user namespace needs both uid and gid mappings")
        if "user" not in namespaces:
            return namespaces + ("user",)
    return namespaces


def userns_plans(pre: tuple, post: tuple, overlay: bool) -> tuple[tuple, tuple]:
    """The mount plans, reworked for a container in its own user namespace.

    There the kernel refuses two things the default plan does after pivot_root:
    a new /proc or /sys unless one is already fully visible in the mount
    namespace (true only before the host's root is detached), and device nodes
    (mknod needs CAP_MKNOD in the host's namespace). So /proc, /sys and /dev go
    in before the pivot, and each device node (default or --device) becomes an empty file with the
    host's node bound onto it (as runc does).
    """
    import stat

    from .mounts import MS_BIND, OP_MKNOD, OP_MOUNT, Op

    if overlay and os.geteuid() == 0:  # rootless, the state directory is ours, i.e. the container root's
        raise SpecError("--userns does not work with the copy-on-write overlay root yet (the overlay's files belong "
                        "to the host's root, whom the namespace does not map): add --no-overlay")
    moved, rest = [], []
    for op in post:
        if op.kind == OP_MOUNT and op.target in ("/proc", "/sys", "/dev"):
            moved.append(op)
        elif op.kind == OP_MKNOD and (stat.S_ISCHR(op.mode) or stat.S_ISBLK(op.mode)):
            moved.append(Op(OP_MKNOD, op.target, mode=stat.S_IFREG | 0o666))
            moved.append(Op(OP_MOUNT, op.target, source=op.source or op.target, flags=MS_BIND))  # the host's node
        else:
            rest.append(op)
    return tuple(pre) + tuple(moved), tuple(rest)


def write_id_maps(pid: int, uid_mappings, gid_mappings) -> None:
    """sync 1 (csrc/spawn.c): the init waits in its new user namespace until these are written.

    Written by the parent as root: the kernel then accepts any range, and
    setgroups(2) stays allowed in the container (an unprivileged writer would
    have to deny it first).
    """
    if os.geteuid() != 0:
        # Rootless: the kernel lets an unprivileged writer map only its own ids, and
        # a gid only once setgroups(2) is denied in the namespace.
        with open(f"/proc/{pid}/setgroups", "w") as f:
            f.write("deny")
    for name, mappings in (("uid_map", uid_mappings), ("gid_map", gid_mappings)):
        path = f"/proc/{pid}/{name}"
        try:
            with open(path, "w") as f:
                f.write(id_map_text(mappings))
        except OSError as err:
            raise HostError(f"write {path} ({id_map_text(mappings).strip()!r}): {err.strerror}") from None


# ---------------------------------------------------------------- what the child gets

def path_ops(masked=DEFAULT_MASKED_PATHS, readonly=DEFAULT_READONLY_PATHS) -> tuple:
    """Plan operations appended after every other mount, so nothing mounted later can undo them."""
    from .mounts import Op

    return tuple(Op(OP_MASK, p) for p in masked) + tuple(Op(OP_READONLY, p) for p in readonly)


DEFAULT_PATH_OPS = None  # built on first use (mounts.Op), then shared


def native_args(spec) -> dict:
    """The security part of the spawn request, from ``spec`` (see syscalls.spawn)."""
    global DEFAULT_PATH_OPS

    proc = spec.process
    caps = proc.capabilities
    mask = DEFAULT_CAP_MASK if caps is DEFAULT_CAPS else cap_mask(caps)
    if spec.seccomp is None:
        program, flags = None, 0
    else:
        from .seccomp import filter_for  # cached: the default run loads ~10 KB, no libseccomp build

        program, flags = filter_for(spec.seccomp, caps)
    if spec.masked_paths is DEFAULT_MASKED_PATHS and spec.readonly_paths is DEFAULT_READONLY_PATHS:
        if DEFAULT_PATH_OPS is None:
            DEFAULT_PATH_OPS = path_ops()
        ops = DEFAULT_PATH_OPS
    else:
        ops = path_ops(spec.masked_paths, spec.readonly_paths)
    # Inheritable: the set for root (as runc's default spec); empty for any other
    # user, whom file inheritable capabilities would otherwise lift across execve
    # when no_new_privs is off (Docker's fix for CVE-2022-24769).
    return {"caps": mask, "inheritable": mask if proc.uid == 0 else 0, "no_new_privs": proc.no_new_privileges,
            "seccomp": program, "seccomp_flags": flags, "path_ops": ops}


def guard_init(args: dict) -> dict:
    """native_args for a container whose PID 1 is minirun-init (`minirun run`; under minirun-oci,
    PID 1 is the bundle's process, which the container may trace as runc lets it): if COMMAND's
    bounding set holds CAP_SYS_PTRACE, which reaches PID 1 past its non-dumpable flag, its filter
    gets PID 1's guard in front (alone under seccomp=unconfined) and /proc/1's memory and fds are
    masked (minirun/seccomp_guard.py). `exec` reuses the recorded filter, guard included. Not
    with CAP_SYS_ADMIN too (--privileged among others): a proc mounted anew opens /proc/1/mem
    past any filter, so the guard would only pretend."""
    caps = args["caps"]
    if caps >> CAP_NUMBER["CAP_SYS_PTRACE"] & 1 and not caps >> CAP_NUMBER["CAP_SYS_ADMIN"] & 1:
        from .seccomp_guard import MASKED_PROC_PATHS, guarded

        args = dict(args, seccomp=guarded(args["seccomp"]),
                    path_ops=args["path_ops"] + path_ops(MASKED_PROC_PATHS, ()))
    return args


def options_to_spec(*, cap_add=(), cap_drop=(), security_opt=(), privileged=False, userns=False,
                    userns_map=()) -> tuple[dict, dict]:
    """`minirun run` security options -> (Process fields, ContainerSpec fields)."""
    proc: dict = {}
    spec: dict = {}
    opts = parse_security_opt(security_opt)
    if privileged:
        proc.update(capabilities=ALL_CAPS, no_new_privileges=False)
        spec.update(seccomp=None, masked_paths=(), readonly_paths=())
    elif cap_add or cap_drop:
        proc["capabilities"] = tweak_caps(cap_add, cap_drop)
        named = {normalize_cap(c) for c in cap_add} - {"ALL"} - set(DEFAULT_CAPS)
        if named:  # ALL means what the host grants; a capability asked for by name must be there
            check_host_grants(sorted(named, key=CAP_NUMBER.__getitem__))
    if "no_new_privileges" in opts:
        proc["no_new_privileges"] = opts["no_new_privileges"]
    if "seccomp" in opts:
        spec["seccomp"] = opts["seccomp"]
    if userns or userns_map:
        if userns_map:
            maps = [parse_id_map(m) for m in userns_map]
            spec.update(uid_mappings=maps, gid_mappings=list(maps))
        elif os.geteuid() != 0:
            spec["uid_mappings"], spec["gid_mappings"] = rootless_id_maps()
        else:
            spec["uid_mappings"], spec["gid_mappings"] = default_id_maps()
    return proc, spec


def rootless_id_maps():
    """Without root the kernel lets us map exactly one id, our own: it becomes the container's root."""
    return [(0, os.geteuid(), 1)], [(0, os.getegid(), 1)]


def state_record(args: dict) -> dict:
    """What `minirun exec` needs to give a new process the container's restrictions (JSON-able)."""
    program = args["seccomp"]
    return {"caps": args["caps"], "no_new_privs": args["no_new_privs"],
            "seccomp": program.hex() if program else None, "seccomp_flags": args.get("seccomp_flags", 0)}


def from_state_record(record: dict | None, uid: int) -> dict:
    """native_args for a process joining a running container; Docker's defaults if nothing was recorded."""
    if record is None:
        from .spec import ContainerSpec, Process

        return native_args(ContainerSpec(rootfs="/", process=Process(["-"], uid=uid)))
    return {"caps": record["caps"], "inheritable": record["caps"] if uid == 0 else 0,
            "no_new_privs": record["no_new_privs"],
            "seccomp": bytes.fromhex(record["seccomp"]) if record["seccomp"] else None,
            "seccomp_flags": record.get("seccomp_flags", 0), "path_ops": ()}
