"""minirun-oci's hot verbs and OCI hooks, implemented once in C (csrc/oci*.c, hooks.c: ociverbs.h).

The native minirun-oci runs state, start, kill, delete, ps, list and features without
Python; minirun/oci/runtime.py and store.py call the very same functions here, through
cffi. An error comes back as the exception its kind names (errors.py's table), with
the C's one-line message; a warning goes to errors.warn (minirun-oci's log.warning).

Light on purpose: `state` and `start` through Python import this and the extension only.
"""

from __future__ import annotations

from ._native import ffi, lib
from .errors import CgroupError, SetupError, SpecError, StoreError, warn


@ffi.def_extern()
def mr_oci_python_warn(msg):  # noqa: D103 - called by the C (ociverbs.c's warn)
    warn(ffi.string(msg).decode(errors="surrogateescape"))


lib.mr_oci_set_warn(lib.mr_oci_python_warn)


def _error(err) -> Exception:
    """The exception a C error's kind names (errors.py's classes), with its message."""
    msg = ffi.string(err.msg).decode(errors="surrogateescape")
    if err.kind == lib.MR_OCI_STORE:
        return StoreError(msg)
    if err.kind == lib.MR_OCI_SETUP:
        return SetupError("oci", 0, msg)  # start could not release the process, or a create hook failed
    if err.kind == lib.MR_OCI_CGROUP:
        return CgroupError(msg)
    if err.kind == lib.MR_OCI_OS:
        return OSError(msg)
    return SpecError(msg)


def _raise(err) -> None:
    raise _error(err)


def _b(text: str) -> bytes:
    return text.encode(errors="surrogateescape")


def _text(ptr, err) -> str:
    if ptr == ffi.NULL:
        _raise(err)
    try:
        return ffi.string(ptr).decode(errors="surrogateescape")
    finally:
        lib.mr_oci_free(ptr)


def checked_root(root: str) -> str:
    err = ffi.new("struct mr_oci_error *")
    return _text(lib.mr_oci_checked_root(_b(root), err), err)


STATUSES = ("created", "running", "stopped", "paused")


def _who(st: dict) -> tuple[int, int, bool]:
    return _record_pid(st.get("pid"), st.get("pid_start"))


def status(root: str, st: dict) -> str:
    return STATUSES[lib.mr_oci_status(_b(root), _b(st["id"]), *_who(st), _b(st.get("freeze_file") or ""))]


def state_json(root: str, container_id: str, indent: int = -1) -> str:
    """`state`'s output (store.oci_state) as the container's state.json says it now."""
    err = ffi.new("struct mr_oci_error *")
    return _text(lib.mr_oci_state(_b(root), _b(container_id), indent, err), err)


def list_ids(root: str) -> list[str]:
    err = ffi.new("struct mr_oci_error *")
    return [name for name in _text(lib.mr_oci_list_ids(_b(root), err), err).split("\n") if name]


def list_text(root: str, quiet: bool, fmt: str | None) -> str:
    """`list`'s output: the ids, the states as JSON, or runc's table."""
    err = ffi.new("struct mr_oci_error *")
    return _text(lib.mr_oci_list_text(_b(root), quiet, _b(fmt) if fmt else ffi.NULL, err), err)


def ps_text(root: str, container_id: str, fmt: str | None, ps_args: list[str]) -> str:
    """`ps`'s output: the pids as JSON, `ps -ef`'s lines for them (read from /proc), or the lines of
    ps(1) run with ``ps_args`` that show them."""
    err = ffi.new("struct mr_oci_error *")
    keep = [ffi.new("char[]", _b(a)) for a in ps_args]
    argv = ffi.new("char *[]", keep + [ffi.NULL])
    return _text(lib.mr_oci_ps_text(_b(root), _b(container_id), _b(fmt) if fmt else ffi.NULL, argv, len(keep), err),
                 err)


def pids(root: str, container_id: str) -> list[int]:
    err = ffi.new("struct mr_oci_error *")
    text = _text(lib.mr_oci_pids(_b(root), _b(container_id), err), err)
    return [int(p) for p in text.strip("[]").split(",") if p.strip()]


def start(root: str, container_id: str) -> None:
    err = ffi.new("struct mr_oci_error *")
    if lib.mr_oci_start(_b(root), _b(container_id), err) < 0:
        _raise(err)


def kill(root: str, container_id: str, sig: int, all_: bool = False) -> None:
    err = ffi.new("struct mr_oci_error *")
    if lib.mr_oci_kill(_b(root), _b(container_id), sig, all_, err) < 0:
        _raise(err)


def delete(root: str, container_id: str, force: bool = False) -> None:
    err = ffi.new("struct mr_oci_error *")
    if lib.mr_oci_delete(_b(root), _b(container_id), force, err) < 0:
        _raise(err)


def parse_signal(text: str) -> int | None:
    sig = lib.mr_oci_parse_signal(_b(str(text)))
    return None if sig < 0 else sig


def run_hooks(kind: str, hooks_json: str, state_json_text: str, fatal: bool) -> None:
    """OCI hooks (a JSON list) with the state on their stdin: the first failure raises
    SetupError if ``fatal``, else each failure is a warning."""
    err = ffi.new("struct mr_oci_error *")
    if lib.mr_oci_run_hooks(_b(kind), _b(hooks_json), _b(state_json_text), fatal, err) < 0:
        _raise(err)


def _out_of_memory():
    err = ffi.new("struct mr_oci_error *")
    err.kind, err.msg = lib.MR_OCI_OS, b"Cannot allocate memory"
    return err


def log_line(level: str, msg: str, json: bool) -> str:
    """One --log record, in runc's logrus JSON or text form."""
    data = _b(msg)
    return _text(lib.mr_oci_log_line(_b(level), data, len(data), json), _out_of_memory())


def log_text_value(text: str) -> str:
    """A value in logrus's text format: bare when it can be, else quoted as Go quotes."""
    data = _b(text)
    return _text(lib.mr_oci_log_text_value(data, len(data)), _out_of_memory())


# minirun/cgroups' Cgroup.kill, destroy, remove_if_unused and pids: the C that delete and
# kill --all run (csrc/ocicgroup.c), for the directories the Python manager holds.

def _dirs(dirs: list[str]):
    keep = [ffi.new("char[]", _b(d)) for d in dirs]
    return keep, ffi.new("char *[]", keep + [ffi.NULL])


def cgroup_kill(dirs: list[str], unified: int) -> None:
    """SIGKILL every process in ``dirs``: cgroup.kill of ``dirs[unified]`` where there is
    one (-1: none), else what cgroup.procs lists until it is empty."""
    err = ffi.new("struct mr_oci_error *")
    _keep, argv = _dirs(dirs)
    if lib.mr_cgroup_kill(argv, len(dirs), unified, err) < 0:
        _raise(err)


def cgroup_destroy(dirs: list[str], unified: int) -> None:
    """Kill, then rmdir every directory (last first), clearing child cgroups and exiting processes."""
    err = ffi.new("struct mr_oci_error *")
    _keep, argv = _dirs(dirs)
    if lib.mr_cgroup_destroy(argv, len(dirs), unified, err) < 0:
        _raise(err)


def cgroup_remove_if_unused(dirs: list[str]) -> bool:
    """Remove ``dirs`` once no process is in them and they hold no child cgroup (waiting up
    to 2 s for a half-made child to die); kill nothing. True if they are gone."""
    err = ffi.new("struct mr_oci_error *")
    _keep, argv = _dirs(dirs)
    removed = lib.mr_cgroup_remove_if_unused(argv, len(dirs), err)
    if removed < 0:
        _raise(err)
    return bool(removed)


def cgroup_pids(dirs: list[str]) -> list[int]:
    """Every process cgroup.procs of ``dirs`` lists, sorted, each once."""
    err = ffi.new("struct mr_oci_error *")
    _keep, argv = _dirs(dirs)
    return [int(p) for p in _text(lib.mr_cgroup_pids(argv, len(dirs), err), err).split()]


# minirun/state.py's store mechanics (the one liveness rule, a checked signal, rmtree):
# the C the native verbs use, for every container.

def _record_pid(pid, pid_start) -> tuple[int, int, bool]:
    ok = isinstance(pid, int) and isinstance(pid_start, int)
    return (pid, pid_start, True) if ok else (0, 0, False)


def pid_alive(pid, pid_start) -> bool:
    return bool(lib.mr_pid_alive(*_record_pid(pid, pid_start)))


def start_time(pid: int) -> int | None:
    started = lib.mr_start_time(pid)
    return None if started < 0 else started


def send_signal(pid, pid_start, sig: int) -> bool:
    err = ffi.new("struct mr_oci_error *")
    sent = lib.mr_send_signal(*_record_pid(pid, pid_start), sig, err)
    if sent < 0:
        _raise(err)
    return bool(sent)


def rmtree(path: str) -> None:
    err = ffi.new("struct mr_oci_error *")
    if lib.mr_rmtree(_b(path), err) < 0:
        _raise(err)


def replace_file(tmp: str, final: str) -> None:
    err = ffi.new("struct mr_oci_error *")
    if lib.mr_replace_file(_b(tmp), _b(final), err) < 0:
        _raise(err)


def check_id_error(name: str, oci: bool):
    """None if ``name`` is a valid id (``oci``: runc's rule, else docker's names), else the StoreError."""
    err = ffi.new("struct mr_oci_error *")
    data = name.encode(errors="surrogateescape")
    return None if lib.mr_check_id(data, len(data), oci, err) == 0 else _error(err)


def release_exec_fifo(state_dir: str, container_id: str, pid, pid_start, start_waits: bool) -> None:
    """Container.start: the process waiting on ``state_dir``'s exec fifo released (see ociverbs.h)."""
    err = ffi.new("struct mr_oci_error *")
    if lib.mr_release_exec_fifo(_b(state_dir), _b(container_id), *_record_pid(pid, pid_start), start_waits, err) < 0:
        _raise(err)
