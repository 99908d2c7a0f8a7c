"""Build the default container root filesystem from Debian's busybox-static.

The tree is small and fully described here:

    bin/busybox              the static binary, copied from the busybox-static package
    bin/sh, usr/bin/env ...  one relative symlink per applet (``busybox --list-full``)
    etc/passwd etc/group     root (0) and nobody/nogroup (65534)
    etc/hosts                localhost for 127.0.0.1 and ::1
    etc/resolv.conf          a comment: containers get no network
    proc sys dev run         empty mount points (the runtime mounts them)
    tmp var/tmp              mode 1777
    root                     mode 0700
    .minirun-rootfs          marker: JSON with the busybox version, sha256 and applet list

Where the binary comes from, in order:

1. ``busybox=PATH`` (or ``$MINIRUN_BUSYBOX``): any static busybox binary;
2. the installed ``busybox-static`` package (``dpkg -L busybox-static``);
3. ``apt-get download busybox-static`` into a temporary directory, then ``dpkg-deb -x``.

``source="download"`` (or ``$MINIRUN_ROOTFS_SOURCE=download``) skips step 2;
``source="installed"`` forbids step 3.

``build`` is idempotent. On a finished tree (marker present, binary unchanged)
it only checks that every directory, file and link is still there. When the
source binary changed it swaps the binary and re-creates the links. A new tree
is built in ``DEST.tmp`` and renamed to DEST, so DEST is either absent or whole.
Symlinks are relative (``usr/bin/env -> ../../bin/busybox``) so they resolve the
same inside the container and when the tree is inspected from the host.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import shutil
import stat
import struct
import subprocess
import tempfile
from typing import Callable, Iterator, Optional

from minirun.errors import HostError, SpecError

PACKAGE = "busybox-static"
MARKER = ".minirun-rootfs"
PARTIAL = ".minirun-rootfs-partial"
FORMAT = 1
BUSYBOX = "bin/busybox"

SOURCE_ENV = "MINIRUN_ROOTFS_SOURCE"  # auto | installed | download
BUSYBOX_ENV = "MINIRUN_BUSYBOX"  # path of a static busybox to use instead of the package
SOURCES = ("auto", "installed", "download")

# (path, mode); created in this order, modes applied regardless of umask.
DIRS = [
    ("bin", 0o755),
    ("sbin", 0o755),
    ("usr", 0o755),
    ("usr/bin", 0o755),
    ("usr/sbin", 0o755),
    ("etc", 0o755),
    ("dev", 0o755),
    ("proc", 0o555),
    ("sys", 0o555),
    ("run", 0o755),
    ("tmp", 0o1777),
    ("var", 0o755),
    ("var/tmp", 0o1777),
    ("root", 0o700),
]

FILES = {
    "etc/passwd": (
        "root:x:0:0:root:/root:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    ),
    "etc/group": (
        "root:x:0:\n"
        "nogroup:x:65534:\n"
    ),
    "etc/hosts": (
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
    ),
    "etc/resolv.conf": (
        "# minirun: containers run in their own network namespace with only a\n"
        "# loopback interface, so there is no nameserver to list here.\n"
    ),
}

Progress = Optional[Callable[[str], None]]
_CMD_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


def build(dest: str, progress: Progress = None, *, source: str | None = None,
          busybox: str | None = None) -> str:
    """Build the busybox rootfs at DEST (or confirm it is complete); return DEST's absolute path.

    progress: called with one human-readable string per step.
    source:   "auto" (default, or $MINIRUN_ROOTFS_SOURCE), "installed" or "download".
    busybox:  path of a static busybox binary to use (or $MINIRUN_BUSYBOX).
    """
    say = progress or (lambda _msg: None)
    if os.geteuid() != 0:
        raise HostError("building the rootfs needs root (its files must be owned by root); run it as root")
    if not dest:
        raise SpecError("rootfs: no destination directory given")
    dest = os.path.abspath(dest)
    if dest == "/":
        raise SpecError("rootfs: refusing to build into /")
    source = source or os.environ.get(SOURCE_ENV) or "auto"
    if source not in SOURCES:
        raise SpecError(f"rootfs: source must be one of {', '.join(SOURCES)}, not {source!r}")
    busybox = busybox or os.environ.get(BUSYBOX_ENV) or None

    parent = os.path.dirname(dest)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise HostError(f"rootfs: cannot create {parent}: {e.strerror}") from None

    with _locked(parent):
        marker = _read_marker(dest)
        if marker is None and os.path.lexists(dest):
            if not os.path.isdir(dest) or os.path.islink(dest):
                raise SpecError(f"rootfs: {dest} exists and is not a directory")
            if os.listdir(dest):
                raise SpecError(f"rootfs: {dest} exists, is not empty and is not a minirun rootfs "
                                f"(no {MARKER}); remove it or choose another directory")
        with tempfile.TemporaryDirectory(prefix="minirun-rootfs-") as work:
            try:
                src = _find_busybox(source, busybox, work, say, have_tree=marker is not None)
                if marker is not None:
                    _refresh(dest, marker, src, say)
                else:
                    _fresh(dest, src, say)
            except OSError as e:
                where = f" ({e.filename})" if e.filename else ""
                raise HostError(f"rootfs: building {dest} failed: {e.strerror or e}{where}") from None
    return dest


# ---------------------------------------------------------------- the binary


class _Busybox:
    """A busybox binary on the host, with what we learned by running it."""

    def __init__(self, path: str, origin: str):
        self.path = path
        self.origin = origin
        _check_static(path)
        self.sha256 = _sha256(path)
        self._version: str | None = None
        self._applets: list[str] | None = None

    @property
    def version(self) -> str:
        if self._version is None:
            out = _run(["busybox", "--help"], f"running {self.path} --help", check=False, executable=self.path)
            first = out.splitlines()[0] if out else ""
            if not first.startswith("BusyBox "):
                raise HostError(f"rootfs: {self.path} does not look like busybox (--help printed {first!r})")
            self._version = first[len("BusyBox "):].replace(" multi-call binary.", "").strip()
        return self._version

    @property
    def applets(self) -> list[str]:
        if self._applets is None:
            out = _run(["busybox", "--list-full"], f"running {self.path} --list-full", executable=self.path)
            self._applets = _clean_applets(out.split())
            if not self._applets:
                raise HostError(f"rootfs: {self.path} --list-full listed no applets")
        return self._applets


def _find_busybox(source: str, explicit: str | None, work: str, say, have_tree: bool) -> _Busybox | None:
    """Locate the busybox to install; None means "keep the one already in the tree"."""
    if explicit:
        if not os.path.isfile(explicit):
            raise SpecError(f"rootfs: busybox binary {explicit} does not exist")
        say(f"busybox: using {explicit}")
        return _Busybox(os.path.abspath(explicit), f"file:{os.path.abspath(explicit)}")
    if source in ("auto", "installed"):
        found = _installed_busybox()
        if found:
            path, pkgver = found
            say(f"busybox: using {path} from the installed {PACKAGE} {pkgver}")
            return _Busybox(path, f"dpkg:{PACKAGE}={pkgver}")
        if source == "installed":
            raise HostError(f"rootfs: {PACKAGE} is not installed; run: apt-get install -y {PACKAGE}")
        if have_tree:
            # Nothing newer to compare with, and downloading on every rerun would
            # make the no-op slow: keep the binary the tree already has.
            return None
    return _download_busybox(work, say)


def _installed_busybox() -> tuple[str, str] | None:
    """(path of the busybox binary, package version) if busybox-static is installed, else None."""
    if not shutil.which("dpkg-query", path=_CMD_ENV["PATH"]):
        return None
    r = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}\t${Version}", PACKAGE],
                       capture_output=True, text=True, env=_CMD_ENV)
    if r.returncode != 0 or not r.stdout.startswith("ii"):
        return None
    version = r.stdout.split("\t", 1)[1].strip()
    r = subprocess.run(["dpkg-query", "-L", PACKAGE], capture_output=True, text=True, env=_CMD_ENV)
    candidates = [line.strip() for line in r.stdout.splitlines()
                  if line.strip().endswith("/busybox") and "/bin/" in line]
    # Debian installs /bin/busybox; a merged-/usr layout may list /usr/bin/busybox.
    candidates.sort(key=lambda p: (p != "/bin/busybox", p))
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path, version
    return None


def _download_busybox(work: str, say) -> _Busybox:
    if not shutil.which("apt-get", path=_CMD_ENV["PATH"]):
        raise HostError(f"rootfs: {PACKAGE} is not installed and apt-get is not available; "
                        f"install a static busybox and pass it with ${BUSYBOX_ENV}")
    say(f"busybox: downloading {PACKAGE} with apt-get")
    debdir = os.path.join(work, "deb")
    os.mkdir(debdir)
    # As root, apt downloads as the _apt user, which cannot write our 0700 temp dir;
    # running the download as root directly avoids its warning.
    r = subprocess.run(["apt-get", "download", "-o", "APT::Sandbox::User=root", PACKAGE],
                       cwd=debdir, capture_output=True, text=True, env=_CMD_ENV, timeout=600)
    if r.returncode != 0:
        errs = [ln for ln in r.stderr.splitlines() if ln.startswith("E:")] or r.stderr.strip().splitlines()
        detail = errs[-1] if errs else f"exit status {r.returncode}"
        raise HostError(f"rootfs: apt-get download {PACKAGE} failed ({detail}); "
                        f"run 'apt-get update' or 'apt-get install -y {PACKAGE}' and retry")
    debs = sorted(glob.glob(os.path.join(debdir, "*.deb")))
    if not debs:
        raise HostError(f"rootfs: apt-get download {PACKAGE} reported success but wrote no .deb")
    deb = debs[-1]
    say(f"busybox: extracting {os.path.basename(deb)}")
    tree = os.path.join(work, "x")
    if not shutil.which("dpkg-deb", path=_CMD_ENV["PATH"]):
        raise HostError(f"rootfs: dpkg-deb is needed to unpack {os.path.basename(deb)}")
    _run(["dpkg-deb", "-x", deb, tree], f"dpkg-deb -x {os.path.basename(deb)}")
    for rel in ("bin/busybox", "usr/bin/busybox"):
        path = os.path.join(tree, rel)
        if os.path.isfile(path):
            return _Busybox(path, f"apt-get download {os.path.basename(deb)}")
    raise HostError(f"rootfs: {os.path.basename(deb)} contains no bin/busybox")


def _check_static(path: str) -> None:
    """Raise HostError unless PATH is an ELF executable with no program interpreter."""
    try:
        with open(path, "rb") as f:
            ident = f.read(64)
            if len(ident) < 52 or ident[:4] != b"\x7fELF":
                raise HostError(f"rootfs: {path} is not an ELF executable")
            order = "<" if ident[5] == 1 else ">"
            if ident[4] == 2:  # ELFCLASS64
                (phoff,) = struct.unpack_from(order + "Q", ident, 32)
                phentsize, phnum = struct.unpack_from(order + "HH", ident, 54)
            else:  # ELFCLASS32
                (phoff,) = struct.unpack_from(order + "I", ident, 28)
                phentsize, phnum = struct.unpack_from(order + "HH", ident, 42)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError as e:
        raise HostError(f"rootfs: cannot read {path}: {e.strerror}") from None
    for i in range(phnum):
        (p_type,) = struct.unpack_from(order + "I", table, i * phentsize)
        if p_type == 3:  # PT_INTERP: needs a dynamic loader the container does not have
            raise HostError(f"rootfs: {path} is dynamically linked; the rootfs needs a static busybox "
                            f"(the {PACKAGE} package)")


def _clean_applets(names: list[str]) -> list[str]:
    """Relative applet paths that are safe to create; drops bin/busybox and top-level linuxrc."""
    out = set()
    for name in names:
        name = name.strip().lstrip("/")
        parts = name.split("/")
        if len(parts) < 2 or any(p in ("", ".", "..") for p in parts) or name == BUSYBOX:
            continue
        out.add(name)
    return sorted(out)


# ---------------------------------------------------------------- the tree


def _fresh(dest: str, bb: _Busybox | None, say) -> None:
    if bb is None:  # only when a tree exists; cannot happen here
        raise HostError("rootfs: no busybox binary found")
    tmp = dest + ".tmp"
    if os.path.lexists(tmp):
        if os.path.isdir(tmp) and not os.path.islink(tmp) and (
                os.path.exists(os.path.join(tmp, PARTIAL)) or not os.listdir(tmp)):
            say(f"removing the unfinished {tmp}")
            shutil.rmtree(tmp)
        else:
            raise SpecError(f"rootfs: {tmp} exists and was not left by minirun; remove it and retry")
    say(f"building {dest} (in {os.path.basename(tmp)})")
    os.mkdir(tmp, 0o755)
    os.chmod(tmp, 0o755)
    _write(os.path.join(tmp, PARTIAL), "unfinished minirun rootfs; safe to delete\n", 0o644)
    _populate(tmp, bb, None, say)
    _write_marker(tmp, bb.version, bb.sha256, bb.origin, bb.applets)
    os.unlink(os.path.join(tmp, PARTIAL))
    # rename(2) replaces DEST if it is an empty directory, and fails otherwise.
    os.rename(tmp, dest)
    say(f"rootfs ready: {dest} (busybox {bb.version}, {len(bb.applets)} applets)")


def _refresh(dest: str, marker: dict, bb: _Busybox | None, say) -> None:
    installed = os.path.join(dest, BUSYBOX)
    have_sha = _sha256(installed) if _is_regular(installed) else None
    if bb is None:
        if have_sha is None or have_sha != marker.get("sha256"):
            raise HostError(f"rootfs: {installed} is missing or was modified and {PACKAGE} is not "
                            f"installed to restore it; remove {dest} and rebuild")
        version, sha, origin, applets = marker["busybox_version"], marker["sha256"], marker.get("source", ""), \
            marker["applets"]
    elif bb.sha256 == marker.get("sha256") == have_sha:
        version, sha, origin, applets = marker["busybox_version"], bb.sha256, marker.get("source", bb.origin), \
            marker["applets"]
    else:
        if bb.sha256 != have_sha:
            say(f"busybox changed: replacing {installed} with {bb.version}")
        else:
            say(f"{MARKER} is out of date: refreshing the applet links")
        version, sha, origin, applets = bb.version, bb.sha256, bb.origin, bb.applets

    changed = _populate(dest, bb if sha != have_sha else None, marker.get("applets", []), say, applets=applets)
    if changed or sha != marker.get("sha256") or applets != marker.get("applets"):
        _write_marker(dest, version, sha, origin, applets)
        say(f"rootfs updated: {dest} (busybox {version}, {len(applets)} applets)")
    else:
        say(f"rootfs up to date: {dest} (busybox {version})")


def _populate(root: str, bb: _Busybox | None, old_applets: list[str] | None, say,
              applets: list[str] | None = None) -> int:
    """Create whatever is missing under ROOT; return how many things were created or replaced.

    bb: install this binary as bin/busybox (None: keep the one there).
    old_applets: the applets of the previous binary, whose links are removed if no longer applets.
    """
    fresh = old_applets is None
    changed = 0
    if applets is None:
        applets = bb.applets if bb else []

    # A container can rewrite its rootfs (it is root in there). Nothing below may
    # follow a symlink planted in the tree, or a rebuild from the host would write
    # (or chmod) host files: directories are checked with lstat parents-first,
    # files are created with O_EXCL|O_NOFOLLOW, links replaced with unlink+symlink.
    for rel, mode in DIRS:
        path = os.path.join(root, rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            os.mkdir(path, mode)
            st = os.lstat(path)
            changed += not fresh
        if not stat.S_ISDIR(st.st_mode):
            raise SpecError(f"rootfs: {path} is no longer a directory (something replaced it); "
                            f"remove {root} and rebuild")
        if stat.S_IMODE(st.st_mode) != mode:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
            changed += not fresh
    if fresh:
        say("created " + " ".join(rel for rel, _ in DIRS))

    if bb is not None:
        with open(bb.path, "rb") as src:
            _write(os.path.join(root, BUSYBOX), src, 0o755)
        changed += 1
        say(f"installed /{BUSYBOX} ({bb.version}, sha256 {bb.sha256[:12]})")

    stale = sorted(set(old_applets or ()) - set(applets))
    for rel in stale:
        path = os.path.join(root, rel)
        if os.path.islink(path) and os.readlink(path) == _link_target(rel):
            os.unlink(path)
            changed += 1
    linked = 0
    for rel in applets:
        path = os.path.join(root, rel)
        want = _link_target(rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is not None:
            if not stat.S_ISLNK(st.st_mode) or os.readlink(path) == want:
                continue  # correct already, or a real file someone put there: leave it
            os.unlink(path)
        _mkdirs_nofollow(root, os.path.dirname(rel))
        os.symlink(want, path)
        linked += 1
    changed += linked
    if linked or stale:
        say(f"linked {linked} applets to /{BUSYBOX}" + (f", removed {len(stale)} stale links" if stale else ""))

    written = []
    for rel, text in FILES.items():
        path = os.path.join(root, rel)
        if not os.path.lexists(path):
            _write(path, text, 0o644)
            written.append("/" + rel)
    changed += len(written)
    if written:
        say("wrote " + " ".join(written))
    return changed


def _link_target(rel: str) -> str:
    return os.path.relpath(BUSYBOX, os.path.dirname(rel))


# ---------------------------------------------------------------- helpers


def _read_marker(dest: str) -> dict | None:
    try:
        with open(os.path.join(dest, MARKER)) as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("applets"), list) \
            or not isinstance(data.get("sha256"), str):
        raise SpecError(f"rootfs: {os.path.join(dest, MARKER)} is unreadable or from another minirun version; "
                        f"remove {dest} and rebuild")
    return data


def _write_marker(root: str, version: str, sha: str, origin: str, applets: list[str]) -> None:
    data = {"format": FORMAT, "busybox_version": version, "sha256": sha, "source": origin, "applets": applets}
    _write(os.path.join(root, MARKER), json.dumps(data, indent=1) + "\n", 0o644)


def _write(path: str, content, mode: int) -> None:
    """Atomically replace PATH with CONTENT (str, or a binary file object to copy), never following symlinks."""
    tmp = path + ".new"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "wb") as f:
        if isinstance(content, str):
            f.write(content.encode())
        else:
            shutil.copyfileobj(content, f, 1 << 20)
        os.fchmod(f.fileno(), mode)
    os.replace(tmp, path)


def _mkdirs_nofollow(root: str, rel: str) -> None:
    """mkdir -p ROOT/REL, refusing any existing component that is not a real directory."""
    path = root
    for part in rel.split("/"):
        path = os.path.join(path, part)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            os.mkdir(path, 0o755)
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise SpecError(f"rootfs: {path} is no longer a directory (something replaced it); "
                            f"remove {root} and rebuild")


def _is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _run(argv: list[str], what: str, check: bool = True, executable: str | None = None) -> str:
    # busybox picks the applet from argv[0]; executable= lets a binary under any name run as "busybox".
    try:
        r = subprocess.run(argv, capture_output=True, text=True, env=_CMD_ENV, timeout=120, executable=executable)
    except OSError as e:
        raise HostError(f"rootfs: {what} failed: {e.strerror}") from None
    if check and r.returncode != 0:
        last = r.stderr.strip().splitlines()[-1:] or [f"exit status {r.returncode}"]
        raise HostError(f"rootfs: {what} failed: {last[0]}")
    return r.stdout


@contextlib.contextmanager
def _locked(directory: str) -> Iterator[None]:
    """Serialise builders sharing DEST's parent directory (flock on the directory itself)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
