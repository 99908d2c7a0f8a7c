"""Per-container state under /run/minirun/<id>/: storage only (what a dead owner left
is collected by minirun/cleanup.py).

    /run/minirun/<id>/lock         flock()ed by the container's owner (a foreground
                                   minirun, or the supervisor of a detached one) for
                                   as long as it lives: the liveness test
    /run/minirun/<id>/state.json   written atomically (temp file + rename)
    /var/lib/minirun/containers/<id>/log, log.1 ...   output of a detached container, on
                                   disk (minirun/logfiles.py; rootless: $XDG_DATA_HOME/minirun)
    /run/minirun/<id>/{upper,work,root}   the overlay root
    /run/minirun-vm/<name>/lock    the same liveness lock for a `minirun vm run`
                                   (kept apart: `ps`, `rm` and `exec` are for containers)

The directory is created under a temporary name, locked, then renamed into
place, so a concurrent gc never sees an unlocked directory of a live run, and
two runs can never claim the same name. A directory whose lock can be taken
belongs to nobody: a foreground container's is stale and removed by
``cleanup.gc()`` (with its cgroups); a detached container's stays, as "exited", until `rm`.

Rootless state without $XDG_RUNTIME_DIR lives in /tmp, where another user could
have made the directory first: the root (and its /tmp parent) is checked by
lstat before every use and refused unless it is a real directory of ours that
nobody else can write. Files are created with O_NOFOLLOW under unique names,
and trees are removed through directory fds, never following a link.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from stat import S_ISDIR

from . import jsonlite as json  # not the json package: its import costs a start ~7 ms (jsonlite.py)
from .errors import HostError, SpecError
# Rootless (a non-root user with --userns): state lives in the user's runtime directory,
# else in a private directory of /tmp that minirun makes (and checks: check_root). The
# roots are settings' (MINIRUN_STATE_ROOT...); NETWORK_DIR is the bridge's address book,
# LOG_ROOT where detached containers' logs go.
from .settings import LOG_ROOT, NETWORK_DIR, STATE_ROOT, TMP_PARENT, VM_STATE_ROOT  # noqa: F401 (re-exported)

NEW_PREFIX = ".new-"
NEW_GRACE_S = 60  # a ".new-" dir younger than this may belong to a run being set up

CREATING, RUNNING, EXITED = "creating", "running", "exited"


def check_root(root: str, create: bool = False) -> bool:
    """Check the state root before using it: False if it does not exist (and ``create``
    is off); HostError if it is not ours. A root in /tmp is checked with its parent,
    which must be private: another user may have made either one first."""
    dirs = [os.path.dirname(root), root] if os.path.dirname(root) == TMP_PARENT else [root]
    for path in dirs:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            if not create:
                return False
            os.mkdir(path, 0o700)
            st = os.lstat(path)
        others = 0o077 if path == TMP_PARENT else 0o022  # /tmp/minirun-UID: ours alone
        if not S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & others:
            what = "a directory" if S_ISDIR(st.st_mode) else "not a directory"
            raise HostError(f"refusing the state directory {path}: {what} of uid {st.st_uid}, mode "
                            f"{st.st_mode & 0o7777:o}, not one minirun made for uid {os.geteuid()} "
                            f"(remove it, or set XDG_RUNTIME_DIR)")
    return True


def check_trusted_dir(path: str) -> str:
    """``path`` resolved once (what a link there points to now is what gets used), and
    checked: the directory, if it exists, is ours and nobody else may write it, and so
    is every directory above it, but for sticky ones (/tmp: others cannot move ours away).
    Otherwise another user could write the state the caller trusts (for minirun-oci, the
    pids it signals and the hooks `delete` runs as root). HostError if not."""
    real = os.path.realpath(path)
    euid = os.geteuid()
    parts = real.split("/")
    for depth in range(1, len(parts) + 1):
        current = "/".join(parts[:depth]) or "/"
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            break  # made later, by us
        last = current == real
        owners = (euid,) if last else (0, euid)
        open_to_others = st.st_mode & 0o022 and (last or not st.st_mode & 0o1000)
        if not S_ISDIR(st.st_mode) or st.st_uid not in owners or open_to_others:
            what = "a directory" if S_ISDIR(st.st_mode) else "not a directory"
            raise HostError(f"refusing the state directory {path}: {current} is {what} of uid {st.st_uid}, "
                            f"mode {st.st_mode & 0o7777:o}, which uid {euid} does not control alone")
    return real


def try_lock(path: str) -> int | None:
    """Lock ``path`` if nobody holds it: the fd (-1 if there is no such file), or None when held."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return -1
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def is_live(container_id: str, root: str = STATE_ROOT) -> bool:
    fd = try_lock(os.path.join(root, container_id, "lock"))
    if fd is None:
        return True
    if fd >= 0:
        os.close(fd)
    return False


def read(container_id: str, root: str = STATE_ROOT) -> dict:
    check_root(root)
    with open(os.open(os.path.join(root, container_id, "state.json"), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)) as f:
        return json.load(f)


def write(state_dir: str, state: dict) -> None:
    """Replace state.json atomically: readers see the old or the new file, never half.
    The temporary file has a name of its own (two writers never share it) and is
    created, never opened through a link."""
    tmp = os.path.join(state_dir, f".state.json.{os.urandom(6).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with open(fd, "w") as f:
            json.dump(state, f)
        os.rename(tmp, os.path.join(state_dir, "state.json"))
    except BaseException:
        _unlink(tmp)
        raise


def _unlink(path: str, dir_fd: int | None = None) -> None:
    try:
        os.unlink(path, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


class Claim:
    """Ownership of /run/minirun/<id> while the container lives: see the module doc.
    ``reclaim(id, root)`` removes what a dead owner left under the same name (default:
    the directory; a container's caller passes cleanup.remove, which takes its cgroups)."""

    def __init__(self, container_id: str, info: dict, keep: bool = False, root: str = STATE_ROOT, reclaim=None):
        self.id, self.keep, self.root, self.reclaim = container_id, keep, root, reclaim
        self.path = os.path.join(root, container_id)
        self.state = dict(info, id=container_id, status=CREATING, owner=os.getpid(), detached=keep,
                          created=time.time())
        self._lock_fd = -1

    def __enter__(self) -> Claim:
        check_root(self.root, create=True)
        tmp = os.path.join(self.root, NEW_PREFIX + os.urandom(6).hex())
        os.mkdir(tmp, 0o700)
        self._lock_fd = os.open(os.path.join(tmp, "lock"),
                                os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            write(tmp, self.state)
            _rename_into_place(tmp, self.path, self.id, self.root, self.reclaim)
        except BaseException:
            rmtree(tmp)
            os.close(self._lock_fd)
            raise
        return self

    @property
    def lock_fd(self) -> int:
        """Held while a minirun process owns the container (is_live); passed down execs by the shim."""
        return self._lock_fd

    def update(self, **fields) -> None:
        self.state.update(fields)
        write(self.path, self.state)

    def __exit__(self, *exc) -> None:
        if not self.keep:
            rmtree(self.path)
        elif self.state["status"] != EXITED:  # the run failed before the container started
            self.update(status=EXITED, exit_code=125, finished=time.time())
        os.close(self._lock_fd)


def claim(container_id: str, info: dict, keep: bool = False, root: str = STATE_ROOT, reclaim=None) -> Claim:
    return Claim(container_id, info, keep, root, reclaim)


def _rename_into_place(tmp: str, final: str, container_id: str, root: str, reclaim) -> None:
    for _ in range(2):
        try:
            os.rename(tmp, final)
            return
        except OSError as err:
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        if is_live(container_id, root):
            break
        try:
            if read(container_id, root).get("detached"):
                raise SpecError(f'container name "{container_id}" is already in use by a stopped container: '
                                f"remove it first (minirun rm {container_id})")
        except (OSError, ValueError):
            pass
        (reclaim or remove_dir)(container_id, root)  # left by a minirun that died: take the name back
    raise SpecError(f'container name "{container_id}" is already in use')


def rmtree(path: str) -> None:
    """Remove a directory tree (a state directory, an overlay's upper and work) through
    directory fds, as shutil.rmtree does on Linux (whose import costs more than a
    container takes to start): a symbolic link is removed, never followed, even one
    swapped in for a directory while we walk. Directories are made writable first:
    overlayfs leaves a mode-000 work/work, which only root could enter otherwise (a
    rootless container's state is its user's)."""
    parent, name = os.path.split(path)
    try:
        parent_fd = os.open(parent or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        _remove_entry(parent_fd, name)
    finally:
        os.close(parent_fd)


def _open_subdir(dir_fd: int, name: str) -> int:
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except PermissionError:
        pass
    # Mode 000: chmod it through an O_PATH fd of this very directory (no name lookup).
    path_fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        os.chmod(f"/proc/self/fd/{path_fd}", 0o700)
    finally:
        os.close(path_fd)
    return os.open(name, flags, dir_fd=dir_fd)


def _remove_entry(dir_fd: int, name: str) -> None:
    """Remove ``name`` from the directory ``dir_fd``: a directory with all it holds,
    anything else (a link included) by unlink."""
    try:
        fd = _open_subdir(dir_fd, name)
    except FileNotFoundError:
        return
    except OSError as err:
        if err.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        _unlink(name, dir_fd)  # a file or a link: the link itself goes, its target stays
        return
    try:
        with os.scandir(fd) as it:
            entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        for entry, is_dir in entries:
            if is_dir:
                _remove_entry(fd, entry)
            else:
                try:
                    _unlink(entry, fd)
                except IsADirectoryError:  # replaced by a directory meanwhile
                    _remove_entry(fd, entry)
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def log_dir(container_id: str) -> str:
    return os.path.join(LOG_ROOT, container_id)


def checked_log_dir(container_id: str) -> str:
    """log_dir, for the log's writer and readers: under a root only we control
    (check_trusted_dir), else another user could put a directory of theirs in the
    container's place, for `logs` to show or the finish step to write through."""
    return os.path.join(check_trusted_dir(LOG_ROOT), container_id)


def open_log_dir(container_id: str) -> int:
    """A fresh, empty log directory for the container (what a dead namesake left goes), as an
    O_DIRECTORY fd: the shim writes and rotates relative to it. Call it only once the state
    directory is claimed: the name is ours then."""
    path = checked_log_dir(container_id)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    rmtree(path)
    os.mkdir(path, 0o700)
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


def remove_log_dir(container_id: str) -> None:
    rmtree(log_dir(container_id))


def remove_dir(container_id: str, root: str = STATE_ROOT) -> None:
    """The state directory only; cleanup.remove() takes the container's cgroups too."""
    rmtree(os.path.join(root, container_id))


def open_pidfd(st: dict) -> int | None:
    """A pidfd of the container's init, or None if it is gone. The pid is checked
    against the recorded start time after the pidfd is taken, so the pidfd names
    the very process that was recorded, never one that got its pid since: signals
    (pidfd_send_signal) and setns through it reach the container or nothing."""
    pid = st.get("pid")
    if not pid or not st.get("pid_start"):
        return None
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    if start_time(pid) != st["pid_start"]:
        os.close(fd)
        return None
    return fd


def alive(record: dict) -> bool:
    """The one liveness rule: the recorded init (pid and its start time) runs, not a zombie."""
    pid = record.get("pid") or 0
    if pid <= 0:
        return False
    started, letter = proc_stat(pid)
    return started is not None and started == record.get("pid_start") and letter not in ("Z", "X")


def start_time(pid: int) -> int | None:
    """A process's start time in clock ticks: with the pid, it names the process
    uniquely (a pid alone may be reused by the time we signal it)."""
    return proc_stat(pid)[0]


def proc_stat(pid: int) -> tuple[int | None, str]:
    """(start time in clock ticks, state letter) of ``pid``; (None, "") once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[19]), fields[0]
    except (OSError, IndexError, ValueError):
        return None, ""


def send_signal(st: dict, sig: int) -> bool:
    """Send ``sig`` to the container's init through a pidfd checked against the recorded
    start time (open_pidfd): False if that process is gone, and then nobody is signalled."""
    import _signal  # the signal module's IntEnums import enum: ~3.5 ms a start (entry.py)

    fd = open_pidfd(st)
    if fd is None:
        return False
    try:
        _signal.pidfd_send_signal(fd, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)


class DirLock:
    """flock() on a state directory itself, held across one change of its state (the
    OCI store's verbs). A waiter that gets the lock after the directory was removed
    (or removed and made again) finds it gone: FileNotFoundError, as if it came later."""

    def __init__(self, path: str, blocking: bool = True):
        self.path, self.blocking, self.fd = path, blocking, -1

    def __enter__(self) -> DirLock:
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.blocking else fcntl.LOCK_NB))
            held, now = os.fstat(fd), os.lstat(self.path)
            if (held.st_dev, held.st_ino) != (now.st_dev, now.st_ino):
                raise FileNotFoundError(errno.ENOENT, "removed meanwhile", self.path)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)


def list_ids(root: str = STATE_ROOT) -> list[str]:
    if not check_root(root):
        return []
    try:
        return sorted(n for n in os.listdir(root) if not n.startswith("."))
    except FileNotFoundError:
        return []
