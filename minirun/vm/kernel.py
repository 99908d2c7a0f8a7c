"""The guest kernel: fetch a Debian kernel package, unpack it into a cache, reuse it.

Never installed into the host's /boot: ``apt-get download`` fetches the .deb and
``dpkg -x`` unpacks it under ``$MINIRUN_CACHE/kernels/<package>/`` (default cache
/var/cache/minirun).  A ``minirun-kernel.json`` stamp written last marks a complete
unpack, and the directory is renamed into place, so a killed fetch never leaves a
half-unpacked kernel that looks valid.

Flavours (Debian 12 metapackages):
  cloud    linux-image-cloud-amd64: smaller, LZ4-compressed, boots faster under TCG;
           no 9p support at all.  Default for initramfs boots.
  generic  linux-image-amd64: ships 9p/virtio as modules; needed by --share-root.

``python3 -m minirun.vm.kernel fetch [--flavour cloud|generic|all]`` fills the cache
(the Makefile's ``kernel`` target), with apt's progress on stderr.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

from .. import jsonlite as json  # not the json package: ~1.5 ms of every VM run (jsonlite.py)
from ..record import Record
from .errors import KernelFetchError, KernelNotFound

FLAVOURS = {"cloud": "linux-image-cloud-amd64", "generic": "linux-image-amd64"}
DEFAULT_FLAVOUR = "cloud"
SHARE_ROOT_FLAVOUR = "generic"
STAMP = "minirun-kernel.json"


def cache_root() -> str:
    return os.environ.get("MINIRUN_CACHE", "/var/cache/minirun")


def kernels_dir() -> str:
    return os.path.join(cache_root(), "kernels")


class Kernel(Record, frozen=True):
    """A bootable kernel image; ``root`` is the unpacked package tree (for modules), if known."""

    image: str
    release: str
    root: str | None = None
    flavour: str | None = None

    @property
    def modules_dir(self) -> str | None:
        if not self.root:
            return None
        path = os.path.join(self.root, "lib", "modules", self.release)
        return path if os.path.isdir(path) else None

    def config(self) -> dict[str, str]:
        """The kernel's build config (``boot/config-<release>``), empty when unknown."""
        if not self.root:
            return {}
        path = os.path.join(self.root, "boot", f"config-{self.release}")
        out: dict[str, str] = {}
        try:
            with open(path) as f:
                for line in f:
                    key, sep, value = line.strip().partition("=")
                    if sep and key.startswith("CONFIG_"):
                        out[key] = value
        except OSError:
            pass
        return out


def image_release(path: str) -> str:
    """The release string embedded in a bzImage's setup header (what ``file`` prints)."""
    try:
        with open(path, "rb") as f:
            head = f.read(0x4000)
    except OSError as err:
        raise KernelNotFound(f"cannot read kernel {path}: {err.strerror}") from err
    if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
        raise KernelNotFound(f"{path} is not an x86 bzImage kernel")
    (offset,) = struct.unpack_from("<H", head, 0x20E)
    raw = head[offset + 0x200 : offset + 0x300]
    return raw.split(b"\0")[0].split(b" ")[0].decode(errors="replace")


def image_init_size(path: str) -> int:
    """Bytes the kernel needs to decompress and start (the bzImage header's ``init_size``, boot protocol 2.10+)."""
    with open(path, "rb") as f:
        head = f.read(0x270)
    return struct.unpack_from("<I", head, 0x260)[0] if len(head) >= 0x264 else 0


def _decompress(payload: bytes) -> bytes | None:
    """A bzImage payload, decompressed by the format its magic names; None without a decompressor."""
    import zlib

    try:
        if payload.startswith(b"\x02\x21\x4c\x18"):  # LZ4 legacy frame (Debian's cloud kernel)
            return subprocess.run(["lz4", "-dc"], input=payload, capture_output=True, timeout=60).stdout
        if payload.startswith(b"\xfd7zXZ\x00"):  # Debian's generic kernel
            import lzma

            return lzma.LZMADecompressor().decompress(payload)  # stops at the stream's end (a size trailer follows)
        if payload.startswith(b"\x1f\x8b"):
            return zlib.decompress(payload, 16 + zlib.MAX_WBITS)
        if payload.startswith(b"\x28\xb5\x2f\xfd"):
            return subprocess.run(["zstd", "-dc"], input=payload, capture_output=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired, ValueError, zlib.error, EOFError):
        return None
    except Exception:  # lzma.LZMAError and the like: a payload we cannot read is just not used
        return None
    return None


def pvh_image(kernel: Kernel) -> str | None:
    """The uncompressed ELF vmlinux inside ``kernel.image``, for a PVH boot: QEMU enters it at its PVH note,
    skipping the real-mode setup and the decompressor (a microvm /bin/true under TCG: 64% of -M pc's time
    instead of 80%).  Extracted once, next to the image in the cache; None for a kernel without CONFIG_PVH,
    outside the cache, or compressed with something this host cannot undo (lz4 is the lz4 package)."""
    if not kernel.root:
        return None
    out = os.path.join(kernel.root, "boot", f"vmlinux-{kernel.release}")
    if os.path.isfile(out):  # extracted by an earlier run, which read the config (~1.5 ms a run)
        return out
    if kernel.config().get("CONFIG_PVH") != "y":
        return None
    try:
        with open(kernel.image, "rb") as f:
            data = f.read()
        setup_sects = data[0x1F1] or 4
        offset, length = struct.unpack_from("<II", data, 0x248)
        start = (setup_sects + 1) * 512 + offset
        elf = _decompress(data[start : start + length])
        if not elf or not elf.startswith(b"\x7fELF"):
            return None
        fd, tmp = tempfile.mkstemp(prefix=".vmlinux-", dir=os.path.dirname(out))
        with os.fdopen(fd, "wb") as f:
            f.write(elf)
        os.replace(tmp, out)
    except (OSError, struct.error, IndexError):
        return None
    return out


def from_path(path: str) -> Kernel:
    """``--kernel PATH``; finds ``../lib/modules/<release>`` when PATH sits in an unpacked package tree."""
    if not os.path.isfile(path):
        raise KernelNotFound(f"kernel {path} does not exist")
    path = os.path.abspath(path)
    release = image_release(path)
    root = os.path.dirname(os.path.dirname(path))
    has_modules = os.path.isdir(os.path.join(root, "lib", "modules", release))
    return Kernel(path, release, root if has_modules else None)


def _stamped(directory: str) -> Kernel | None:
    try:
        with open(os.path.join(directory, STAMP)) as f:
            meta = json.load(f)
        image = os.path.join(directory, "boot", f"vmlinuz-{meta['release']}")
    except (OSError, ValueError, KeyError):
        return None
    return Kernel(image, meta["release"], directory, meta.get("flavour")) if os.path.isfile(image) else None


def _version_key(release: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"[.-]", release)]


def cached(flavour: str) -> Kernel | None:
    """The newest complete kernel of ``flavour`` in the cache, without touching the network."""
    found = []
    try:
        names = os.listdir(kernels_dir())
    except OSError:
        return None
    for name in names:
        kernel = _stamped(os.path.join(kernels_dir(), name))
        if kernel and kernel.flavour == flavour:
            found.append(kernel)
    return max(found, key=lambda k: _version_key(k.release)) if found else None


def resolve_package(flavour: str) -> str:
    """The versioned package (``linux-image-6.1.0-NN-cloud-amd64``) the flavour's metapackage points at."""
    if flavour not in FLAVOURS:
        raise KernelNotFound(f"unknown kernel flavour {flavour!r}: use {' or '.join(FLAVOURS)}")
    meta = FLAVOURS[flavour]
    try:
        out = subprocess.run(["apt-cache", "depends", meta], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise KernelFetchError(f"cannot resolve {meta}: apt-cache: {err}") from err
    for line in out.stdout.splitlines():
        match = re.match(r"\s*Depends:\s*(linux-image-\S+)", line)
        if match:
            return match.group(1)
    raise KernelFetchError(f"cannot resolve {meta} with apt-cache: {(out.stderr or out.stdout).strip()[:200]}")


def _progress(msg: str) -> None:
    print(f"minirun: {msg}", file=sys.stderr, flush=True)


def fetch(flavour: str = DEFAULT_FLAVOUR, quiet: bool = False) -> Kernel:
    """Download and unpack the flavour's current kernel unless already cached; returns it."""
    package = resolve_package(flavour)
    target = os.path.join(kernels_dir(), package)
    kernel = _stamped(target)
    if kernel:
        return kernel
    os.makedirs(kernels_dir(), exist_ok=True)
    say = (lambda msg: None) if quiet else _progress
    work = tempfile.mkdtemp(prefix=".fetch-", dir=kernels_dir())
    try:
        say(f"fetching {package} with apt-get download")
        # apt shows its own progress; send it to stderr so stdout stays the guest's.
        proc = subprocess.run(
            ["apt-get", "download", package],
            cwd=work,
            stdout=subprocess.DEVNULL if quiet else sys.stderr.fileno(),
            stderr=subprocess.PIPE,
            text=True,
        )
        debs = [f for f in os.listdir(work) if f.endswith(".deb")]
        if proc.returncode != 0 or not debs:
            raise KernelFetchError(f"apt-get download {package} failed: {proc.stderr.strip().splitlines()[-1:]}")
        say(f"unpacking {debs[0]} (dpkg -x)")
        root = os.path.join(work, "root")
        subprocess.run(["dpkg", "-x", os.path.join(work, debs[0]), root], check=True, capture_output=True)
        images = [f for f in os.listdir(os.path.join(root, "boot")) if f.startswith("vmlinuz-")]
        if not images:
            raise KernelFetchError(f"{debs[0]} contains no boot/vmlinuz-*")
        release = images[0][len("vmlinuz-") :]
        if shutil.which("depmod"):  # modules.dep lets modinfo/modprobe work against the tree
            subprocess.run(["depmod", "-b", root, release], capture_output=True)
        with open(os.path.join(root, STAMP), "w") as f:
            json.dump({"package": package, "deb": debs[0], "release": release, "flavour": flavour}, f)
        try:
            os.rename(root, target)
        except OSError:
            if not _stamped(target):  # lost a race with a concurrent fetch: theirs is as good
                raise
        say(f"kernel {release} cached in {target}")
    except subprocess.CalledProcessError as err:
        raise KernelFetchError(f"unpacking {package} failed: {err.stderr.decode(errors='replace').strip()}") from err
    except OSError as err:  # apt-get or dpkg missing, cache not writable
        raise KernelFetchError(f"fetching {package} failed: {err}") from err
    finally:
        shutil.rmtree(work, ignore_errors=True)
    kernel = _stamped(target)
    if kernel is None:
        raise KernelFetchError(f"kernel cache {target} is incomplete")
    return kernel


def get(path: str | None = None, flavour: str | None = None, fetch_missing: bool = True) -> Kernel:
    """``--kernel PATH`` if given, else the cached default flavour (fetched on first use)."""
    if path:
        return from_path(path)
    flavour = flavour or DEFAULT_FLAVOUR
    kernel = cached(flavour)
    if kernel:
        return kernel
    if not fetch_missing:
        raise KernelNotFound(f"no {flavour} kernel in {kernels_dir()}: run `python3 -m minirun.vm.kernel fetch`")
    return fetch(flavour)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python3 -m minirun.vm.kernel", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_fetch = sub.add_parser("fetch", help="download and cache the guest kernel(s)")
    p_fetch.add_argument("--flavour", choices=[*FLAVOURS, "all"], default="all")
    args = parser.parse_args(argv)
    try:
        for flavour in FLAVOURS if args.flavour == "all" else [args.flavour]:
            kernel = fetch(flavour)
            print(f"{flavour}: {kernel.image}")
    except (KernelFetchError, KernelNotFound) as err:
        print(f"minirun: {err}", file=sys.stderr)
        return 125
    return 0


if __name__ == "__main__":
    sys.exit(main())
