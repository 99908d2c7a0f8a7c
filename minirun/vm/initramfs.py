"""Initramfs images: a cpio "newc" writer and a content-hash cache.

A guest's initrd is two cpio archives back to back (the kernel unpacks them in
order, later entries win):

  1. the *bases*: the ROOTFS tree (none for ``--share-root``), then the kernel
     modules the guest loads (9p's for ``--share-root``, and any ``--module``).
     Each is cached as ``$MINIRUN_CACHE/initramfs/<sha256>.cpio`` keyed by the
     content of every entry, so an unchanged rootfs is never re-archived;
  2. the *overlay*, built per run in memory: /init (the guest init), /dev/console
     (the kernel opens it for init's stdio before any /dev exists) and
     /.minirun/config (COMMAND, env, hostname...).

Images are left uncompressed: under TCG, unpacking gzip costs more guest CPU than
reading a few extra MB costs the host (see benchmarks/bench_vm.py).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tempfile
from collections.abc import Iterable

from .kernel import cache_root

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~5 ms of every VM run before QEMU starts, for annotations only
    from typing import BinaryIO

FORMAT_VERSION = b"minirun-initramfs-1"


class CpioWriter:
    """Writes the SVR4 "newc" format the kernel understands (``070701`` headers, 4-byte alignment)."""

    def __init__(self, out: BinaryIO):
        self.out = out
        self.ino = 300000
        self.written = 0

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.written += len(data)

    def _pad(self) -> None:
        if self.written % 4:
            self._write(b"\0" * (4 - self.written % 4))

    def add(self, name: str, mode: int, data: bytes = b"", *, uid: int = 0, gid: int = 0, mtime: int = 0,
            rdev: tuple[int, int] = (0, 0), nlink: int | None = None) -> None:
        name_b = name.lstrip("/").encode() + b"\0"
        self.ino += 1
        fields = (
            self.ino, mode, uid, gid, nlink if nlink is not None else (2 if stat.S_ISDIR(mode) else 1),
            mtime, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0,
        )
        self._write(b"070701" + b"".join(b"%08X" % f for f in fields))
        self._write(name_b)
        self._pad()
        self._write(data)
        self._pad()

    def dir(self, name: str, mode: int = 0o755) -> None:
        self.add(name, stat.S_IFDIR | mode)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self.add(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self.add(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self.add(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def finish(self) -> None:
        self.ino = 0
        self.add("TRAILER!!!", 0, nlink=1)


def _walk(root: str) -> Iterable[tuple[str, os.stat_result, str]]:
    """(archive name, lstat, absolute path) for every entry under root, parents first, sorted."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            yield (name if rel == "." else os.path.join(rel, name)), os.lstat(path), path


def tree_key(root: str) -> str:
    """sha256 over every entry's name, type, mode, owner and content (or link target)."""
    h = hashlib.sha256(FORMAT_VERSION)
    for name, st, path in _walk(root):
        h.update(f"{name}\0{st.st_mode:o}\0{st.st_uid}\0{st.st_gid}\0{st.st_rdev}\0".encode())
        if stat.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                h.update(hashlib.file_digest(f, "sha256").digest() if hasattr(hashlib, "file_digest")
                         else hashlib.sha256(f.read()).digest())
        elif stat.S_ISLNK(st.st_mode):
            h.update(os.readlink(path).encode())
    return h.hexdigest()


def write_tree(root: str, out: BinaryIO) -> None:
    w = CpioWriter(out)
    for name, st, path in _walk(root):
        kw = {"uid": st.st_uid, "gid": st.st_gid}
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            w.add(name, mode, **kw)
        elif stat.S_ISREG(mode):
            with open(path, "rb") as f:
                w.add(name, mode, f.read(), **kw)
        elif stat.S_ISLNK(mode):
            w.add(name, mode, os.readlink(path).encode(), **kw)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            w.add(name, mode, rdev=(os.major(st.st_rdev), os.minor(st.st_rdev)), **kw)
        # sockets are skipped: they mean nothing in a fresh guest
    w.finish()


def images_dir() -> str:
    return os.path.join(cache_root(), "initramfs")


def _cached(key: str, build) -> str:
    """Return ``images_dir()/<key>.cpio``, building it with ``build(fileobj)`` when missing (atomic rename)."""
    path = os.path.join(images_dir(), f"{key}.cpio")
    if os.path.isfile(path):
        return path
    os.makedirs(images_dir(), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".build-", dir=images_dir())
    try:
        with os.fdopen(fd, "wb") as f:
            build(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def rootfs_image(root: str) -> str:
    """The cached base image of a ROOTFS tree."""
    return _cached(tree_key(root), lambda f: write_tree(root, f))


def files_image(files: list[tuple[str, bytes]]) -> str:
    """A cached base image holding ``files`` (guest path, content), with their parent directories."""
    h = hashlib.sha256(FORMAT_VERSION + b"files")
    for name, data in files:
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())

    def build(f: BinaryIO) -> None:
        w = CpioWriter(f)
        made: set[str] = set()
        for name, data in files:
            parts = name.strip("/").split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in made:
                    made.add(d)
                    w.dir(d)
            w.file(name, data)
        w.finish()

    return _cached(h.hexdigest(), build)


def encode_config(pairs: list[tuple[str, str]]) -> bytes:
    """The guest init's config: NUL-terminated key, value strings (see csrc/guest_init.c)."""
    out = bytearray()
    for key, value in pairs:
        for part in (key, value):
            if "\0" in part:
                raise ValueError(f"NUL byte in {key} value {value!r}")
            out += part.encode() + b"\0"
    return bytes(out)


def overlay(init_binary: bytes, config: list[tuple[str, str]]) -> bytes:
    buf = io.BytesIO()
    w = CpioWriter(buf)
    w.dir("dev")
    w.chardev("dev/console", 5, 1)
    w.dir(".minirun", 0o700)
    w.file(".minirun/config", encode_config(config), 0o600)
    w.file("init", init_binary, 0o755)
    w.finish()
    return buf.getvalue()


def compose(bases: list[str], extra: bytes, out_path: str) -> None:
    """Write the base images, then the overlay, into ``out_path`` (the per-run initrd QEMU reads)."""
    with open(out_path, "wb") as out:
        for base in bases:
            with open(base, "rb") as f:
                size, offset = os.fstat(f.fileno()).st_size, 0
                while offset < size:  # in-kernel copy; sendfile may stop short
                    sent = os.sendfile(out.fileno(), f.fileno(), offset, size - offset)
                    if sent == 0:
                        break
                    offset += sent
            out.seek(0, os.SEEK_END)
        out.write(extra)
