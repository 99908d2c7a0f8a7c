"""Containers' state on disk: the one store of both front ends, storage only (what a
dead owner left is collected by minirun/cleanup.py).

    <root>/<id>/state.json   written atomically (unique temp file, swapped in), mode 0600
    <root>/<id>/...          what the front end keeps beside it (the overlay's root, mounted
                             on the directory itself; minirun-oci's exec.fifo; the attach socket)

    minirun      Store(settings.STATE_ROOT)        ids are docker's names
    minirun-oci  Store(root, oci=True)             ids are runc's; directories 0711 as runc's
    minirun vm   Store(settings.VM_STATE_ROOT)     (kept apart: `ps`, `rm` and `exec` are for containers)

One lock discipline: whoever changes a container holds flock() on its directory for
the change. A minirun owner (a foreground `minirun run`; a detached container's
supervisor, then minirun-shim and its finish step, to which the lock is passed) changes
it from its claim to its teardown, so holds it that long; a minirun-oci verb holds it
for the one verb. A claim makes the directory under a temporary name (.new-*), locks
and fills it, then renames it into place: nobody ever sees an unlocked directory of a
run being set up, and two runs can never claim the same name.

One liveness rule (alive()): a container lives while its recorded init does: the pid,
with the start time recorded beside it (/proc/<pid>/stat field 22: a reused pid has
another), and not a zombie. A directory is in use while its lock is held or its init
lives; what is in use is never collected (gc, a claim reclaiming a dead run's name).

A detached container's data, on disk beside its state (data_dir): /var/lib/minirun/containers/<id>/
holds its log, log.1 ... (minirun/logfiles.py), its root's writable layer, upper/ and work/, and
state-root, the state root it is for (rootless: $XDG_DATA_HOME/minirun). Not under /run, a
tmpfs: what a container writes must not fill the host's RAM.

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
import sys
import time
from stat import S_ISDIR

from . import jsonlite as json  # not the json package: its import costs a start ~7 ms (jsonlite.py)
from .errors import HostError, SpecError, StoreError
from .ids import check_id
# Rootless (a non-root user with --userns): state lives in the user's runtime directory,
# else in a private directory of /tmp that minirun makes (and checks: check_root). The
# roots are settings' (MINIRUN_STATE_ROOT...); NETWORK_DIR is the bridge's address book,
# LOG_ROOT where detached containers' data goes (data_dir).
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
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:  # a concurrent start made it: checked below all the same
                pass
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
    pids it signals and the hooks `delete` runs as root). HostError if not. In C
    (csrc/ocistore.c), the check minirun-oci's native verbs make of their root."""
    from .ociverbs import checked_root

    try:
        return checked_root(path)
    except StoreError as err:
        raise HostError(str(err)) from None


def write(state_dir: str, state: dict, *, fresh: bool = False) -> None:
    """Replace state.json atomically: readers see the old or the new file, never half.
    The temporary file has a name of its own (two writers never share it) and is
    created, never opened through a link; it is swapped in (csrc/ocistore.c says why),
    so the new record is not forced to disk: after a power loss a state root on disk
    may hold an empty state.json, which readers take for a damaged one.
    ``fresh``: the directory is a claim's, still under its temporary name and locked,
    where nobody reads yet: state.json is created in place (never replacing one), a
    rename fewer per run."""
    data = json.dumps(state).encode()  # ASCII: json escapes the rest
    final = os.path.join(state_dir, "state.json")
    tmp = final if fresh else os.path.join(state_dir, f".state.json.{os.urandom(6).hex()}")
    create_file(tmp, data)
    if tmp == final:
        return
    from .ociverbs import replace_file  # swapped in, so ext4 never writes a record out (csrc/ocistore.c)

    try:
        replace_file(tmp, final)
    except BaseException:
        _unlink(tmp)
        raise


def create_file(path: str, data: bytes, mode: int = 0o600) -> None:
    """A new file at ``path`` holding ``data``: never one that is there already, never
    through a link planted there. A partly written one is removed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        try:  # os.write, not a file object: its fstat, isatty and seeks cost a run twice over
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)
    except BaseException:
        _unlink(path)
        raise


def _unlink(path: str, dir_fd: int | None = None) -> None:
    try:
        os.unlink(path, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


class Store:
    """The state directories under ``root``: see the module doc."""

    STATE_FILE = "state.json"

    def __init__(self, root: str, *, oci: bool = False):
        self.root, self.oci = root, oci
        self.dir_mode = 0o711 if oci else 0o700  # runc's modes: others may reach, not list, a container's

    def path(self, container_id: str) -> str:
        return os.path.join(self.root, check_id(container_id, oci=self.oci))

    def read(self, container_id: str) -> dict:
        """The record; FileNotFoundError if there is none, ValueError if it is damaged."""
        path = os.path.join(self.path(container_id), self.STATE_FILE)
        with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)) as f:
            return json.load(f)

    def write(self, container_id: str, record: dict) -> None:
        write(self.path(container_id), record)

    def locked(self, container_id: str, blocking: bool = True) -> DirLock:
        """The directory's lock, for one change (FileNotFoundError if there is no such
        directory; BlockingIOError if not ``blocking`` and someone holds it)."""
        return DirLock(self.path(container_id), blocking)

    def in_use(self, container_id: str) -> bool:
        """Its lock is held (an owner's, a verb's), or its recorded init lives."""
        return dir_in_use(self.path(container_id))

    def claim(self, container_id: str, record: dict, *, keep: bool = False, reclaim=None) -> Claim:
        """Take ``container_id``: see Claim."""
        return Claim(self, container_id, record, keep, reclaim)

    def list_ids(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.root) if not n.startswith("."))
        except FileNotFoundError:
            return []


def alive(record: dict) -> bool:
    """The one liveness rule: the recorded init (pid and its start time) runs, not a zombie.
    In C (csrc/ocistore.c), which minirun-oci's native verbs apply too."""
    from .ociverbs import pid_alive

    return pid_alive(record.get("pid"), record.get("pid_start"))


def dir_in_use(path: str) -> bool:
    """The state directory ``path`` is locked, or its recorded init lives: not to be collected."""
    try:
        with DirLock(path, blocking=False):
            pass
    except BlockingIOError:
        return True
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        with open(os.open(os.path.join(path, Store.STATE_FILE), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)) as f:
            return alive(json.load(f))
    except (OSError, ValueError):
        return False


class Claim:
    """A new state directory for ``container_id``, locked, with ``record`` in it; the
    lock is held until ``release()`` or the end of the ``with`` block (see the module
    doc). ``keep``: the directory stays after the block (a detached container, until
    `rm`); else it goes. ``reclaim(id, root)``: removes what a dead run left under the
    name (a container's caller passes cleanup.remove, which takes its cgroups too); with
    None, any directory of that name means the name is taken (minirun-oci: until `delete`)."""

    def __init__(self, store: Store, container_id: str, record: dict, keep: bool = False, reclaim=None):
        self.store, self.id, self.keep, self.reclaim = store, container_id, keep, reclaim
        self.root = store.root
        self.path = store.path(container_id)
        self.state = dict(record)
        self._lock_fd = -1

    def __enter__(self) -> Claim:
        return self.take()

    def take(self) -> Claim:
        check_root(self.root, create=True)
        tmp = os.path.join(self.root, NEW_PREFIX + os.urandom(6).hex())
        os.mkdir(tmp, self.store.dir_mode)
        os.chmod(tmp, self.store.dir_mode)  # not left to the umask
        try:
            self._lock_fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            write(tmp, self.state, fresh=True)
            self._rename_into_place(tmp)
        except BaseException:
            rmtree(tmp)
            self.release()
            raise
        return self

    def _rename_into_place(self, tmp: str) -> None:
        for _ in range(2):
            try:
                os.rename(tmp, self.path)
                return
            except OSError as err:
                if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
            if self.reclaim is None:
                break
            try:
                with self.store.locked(self.id, blocking=False):
                    try:
                        record = self.store.read(self.id)
                    except (OSError, ValueError):
                        record = {}
                    if alive(record):
                        break
                    if record.get("detached"):
                        raise SpecError(f'container name "{self.id}" is already in use by a stopped container: '
                                        f"remove it first (minirun rm {self.id})")
                    self.reclaim(self.id, self.root)  # left by a minirun that died: take the name back
            except BlockingIOError:
                break  # its owner lives
            except (FileNotFoundError, NotADirectoryError):
                pass  # gone meanwhile
        if self.reclaim is None:
            raise SpecError(f"container {self.id!r} already exists")
        raise SpecError(f'container name "{self.id}" is already in use')

    @property
    def lock_fd(self) -> int:
        """The directory's locked fd: passed down execs by the shim, so the lock lives as long as the owner."""
        return self._lock_fd

    def update(self, **fields) -> None:
        self.state.update(fields)
        write(self.path, self.state)

    def release(self) -> None:
        """Let go of the lock (minirun-oci's create, before the clone: its child, which keeps
        our fds until its execve at `start`, would hold it that long)."""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __exit__(self, *exc) -> None:
        if not self.keep:
            rmtree(self.path)
            fd, self._lock_fd = self._lock_fd, -1
            if fd >= 0:
                _close_removed(fd)
        elif self.state.get("status") not in (None, EXITED):  # the run failed before the container started
            self.update(status=EXITED, exit_code=125, finished=time.time())
        self.release()


def _close_removed(fd: int) -> None:
    """The last fd of a removed directory: its close frees the directory's block, which waits
    ~0.1 ms for a discard on ext4 without a journal, mounted -o discard (this machine kind's
    /run). A process that runs containers in a loop leaves it to its thread aside
    (minirun/aside.py, imported only there: the lock is of no use to anyone any more)."""
    aside = sys.modules.get("minirun.aside")
    if aside is None or not aside.close_later(fd):
        os.close(fd)


def claim(container_id: str, info: dict, keep: bool = False, root: str = STATE_ROOT, reclaim=None) -> Claim:
    """minirun's claim: a container (or VM) owned by this process, recorded as creating."""
    record = dict(info, id=container_id, status=CREATING, owner=os.getpid(), detached=keep, created=time.time())
    return Store(root).claim(container_id, record, keep=keep, reclaim=reclaim)


def in_use(container_id: str, root: str = STATE_ROOT) -> bool:
    """A minirun container (or VM) is in use: its owner holds the lock, or its init lives (Store.in_use)."""
    return Store(root).in_use(container_id)


def read(container_id: str, root: str = STATE_ROOT) -> dict:
    check_root(root)
    return Store(root).read(container_id)


def rmtree(path: str) -> None:
    """Remove a directory tree (a state directory, an overlay's upper and work) through
    directory fds, as shutil.rmtree does on Linux (whose import costs more than a
    container takes to start): a symbolic link is removed, never followed, even one
    swapped in for a directory while we walk. Directories are made writable first:
    overlayfs leaves a mode-000 work/work, which only root could enter otherwise (a
    rootless container's state is its user's). The C that minirun-oci's native delete
    runs (csrc/ocistore.c): one implementation."""
    from .ociverbs import rmtree as native_rmtree

    native_rmtree(path)


def data_dir(container_id: str) -> str:
    """A detached container's directory on disk: its log (logfiles.py) and its root's
    writable layer, the overlay's upper and work (one filesystem, as overlayfs needs)."""
    return os.path.join(LOG_ROOT, container_id)


def checked_data_dir(container_id: str) -> str:
    """data_dir, for its makers and readers: under a root only we control
    (check_trusted_dir), else another user could put a directory of theirs in the
    container's place, for `logs` to show, the finish step to write through or the
    container's writes to land in."""
    return os.path.join(check_trusted_dir(LOG_ROOT), container_id)


DATA_OWNER = "state-root"  # in a data directory: the state root (STATE_ROOT) of the container it is for


def make_data_dir(container_id: str) -> str:
    """A fresh, empty data directory for the container (what a dead namesake left goes), by
    its checked path. Made once per run, and only once the state directory is claimed:
    the name is ours then (a start refused for a name in use never touches its owner's).
    Two state roots may share the data root (a rootless user's sessions with and without
    $XDG_RUNTIME_DIR, a MINIRUN_STATE_ROOT without a MINIRUN_LOG_ROOT): the directory names
    its own, and a namesake of another root whose state is there is in use, not dead."""
    path = checked_data_dir(container_id)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    owner = data_dir_owner(path)
    if owner not in (None, STATE_ROOT) and os.path.lexists(os.path.join(owner, container_id)):
        raise SpecError(f'container name "{container_id}" is already in use by a container of the state root {owner}')
    rmtree(path)
    # Made under a name of its own and renamed into place with its owner written: another
    # root's gc or rm never sees it without one (and takes it for nobody's).
    fresh = os.path.join(os.path.dirname(path), NEW_PREFIX + os.urandom(6).hex())
    os.mkdir(fresh, 0o700)
    try:
        create_file(os.path.join(fresh, DATA_OWNER), STATE_ROOT.encode())
        os.rename(fresh, path)
    except BaseException:
        rmtree(fresh)
        raise
    return path


def data_dir_owner(path: str) -> str | None:
    """The state root a data directory is for; None if it names none (made before it did, or
    by a start killed before it wrote the name: an empty file)."""
    try:
        fd = os.open(os.path.join(path, DATA_OWNER), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return os.read(fd, 4096).decode(errors="replace") or None
    finally:
        os.close(fd)


def owns_data_dir(container_id: str) -> bool:
    """The data directory of that name is this state root's (or names no root): not a namesake's of another."""
    return data_dir_owner(data_dir(container_id)) in (None, STATE_ROOT)


def remove_data_dir(container_id: str) -> None:
    if owns_data_dir(container_id):  # another root's namesake stays
        rmtree(data_dir(container_id))


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


def start_time(pid: int) -> int | None:
    """A process's start time in clock ticks (/proc/<pid>/stat, read by the C the liveness
    rule uses): with the pid, it names the process uniquely (a pid alone may be reused by
    the time we signal it). None once it is gone."""
    from .ociverbs import start_time as native_start_time

    return native_start_time(pid)


def send_signal(st: dict, sig: int) -> bool:
    """Send ``sig`` to the container's init through a pidfd checked against the recorded
    start time: False if that process is gone, and then nobody is signalled."""
    from .ociverbs import send_signal as native_send_signal

    return native_send_signal(st.get("pid"), st.get("pid_start"), sig)


class DirLock:
    """flock() on a state directory itself, held across a change of its state (the one
    lock discipline: see the module doc). A waiter that gets the lock after the directory was removed
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
    return Store(root).list_ids() if check_root(root) else []
