"""What runs inside the guest besides the kernel: the init binary and its kernel modules.

The guest init (csrc/guest_init.c, also reachable as minirun/vm/guest_init.c) is
compiled on first use with ``gcc -static -Os`` into
``$MINIRUN_CACHE/guest-init/<sha256 of source + compiler>/init``: static so it runs
on any ROOTFS, cached so only the first run pays for gcc (~1 s).  This is not part
of the cffi build: it is a guest program, not a host extension.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile

from ..errors import HostError
from .errors import KernelNotFound
from .kernel import Kernel, cache_root

_HERE = os.path.dirname(os.path.abspath(__file__))
INIT_SOURCES = (
    os.path.join(_HERE, "guest_init.c"),
    os.path.join(os.path.dirname(os.path.dirname(_HERE)), "csrc", "guest_init.c"),
)

# --share-root: what mounts a virtio-9p root, in the names `modinfo` knows.
NINEP_MODULES = ("virtio_pci", "9pnet_virtio", "9p")
NINEP_MODULES_MICROVM = ("virtio_mmio", "9pnet_virtio", "9p")  # microvm has no PCI: virtio-mmio, found via ACPI
# --network bridge: the virtio NIC (both kernels build virtio_net as a module).
NET_MODULES = ("virtio_pci", "virtio_net")
NET_MODULES_MICROVM = ("virtio_mmio", "virtio_net")


def _source() -> str:
    for path in INIT_SOURCES:
        if os.path.isfile(path):
            return path
    raise HostError(f"guest init source not found (looked in {', '.join(INIT_SOURCES)})")


def init_binary() -> str:
    """Path of the compiled static guest init, compiling it if the cache lacks it."""
    src = _source()
    cc = os.environ.get("CC", "gcc")
    cc_path = shutil.which(cc)
    if not cc_path:
        raise HostError(f"{cc} not found: the guest init is compiled on first use (apt-get install gcc libc6-dev)")
    with open(src, "rb") as f:
        source = f.read()
    # The compiler known by its file (an upgrade replaces it), not by `cc --version`: a process every run.
    cc_path = os.path.realpath(cc_path)
    st = os.stat(cc_path)
    key = hashlib.sha256(source + f"\0{cc_path}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:24]
    out_dir = os.path.join(cache_root(), "guest-init", key)
    binary = os.path.join(out_dir, "init")
    if os.path.isfile(binary):
        return binary
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".init-", dir=out_dir)
    os.close(fd)
    try:
        proc = subprocess.run([cc, "-static", "-Os", "-s", "-Wall", "-o", tmp, src], capture_output=True, text=True)
        if proc.returncode != 0:
            raise HostError(f"compiling the guest init failed ({cc} -static): {proc.stderr.strip()[-300:]}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, binary)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return binary


def _module_file(kernel: Kernel, name: str) -> str | None:
    wanted = name.replace("-", "_")
    for dirpath, _dirs, files in os.walk(os.path.join(kernel.modules_dir or "", "kernel")):
        for f in files:
            base = f.split(".ko")[0]
            if ".ko" in f and base.replace("-", "_") == wanted:
                return os.path.join(dirpath, f)
    return None


def _depends(path: str) -> list[str]:
    out = subprocess.run(["modinfo", "-F", "depends", path], capture_output=True, text=True)
    if out.returncode != 0:
        raise HostError(f"modinfo {path} failed: {out.stderr.strip()} (apt-get install kmod)")
    return [d for d in out.stdout.strip().split(",") if d]


def _built_in(kernel: Kernel, name: str) -> bool:
    """Whether ``name`` is compiled into the kernel (``modules.builtin`` lists it)."""
    try:
        with open(os.path.join(kernel.modules_dir or "", "modules.builtin")) as f:
            return any(os.path.basename(line.strip()).split(".ko")[0].replace("-", "_") == name.replace("-", "_")
                       for line in f)
    except OSError:
        return False


def module_order(kernel: Kernel, names: tuple[str, ...]) -> list[str]:
    """Module files for ``names`` and their dependencies, dependencies first (``modinfo -F depends``).

    Always from the booted kernel's own tree (its package unpacked in the cache), never the host's
    /lib/modules.  Names the kernel has built in are skipped; a name it has neither way is an error.
    """
    if not kernel.modules_dir:
        raise KernelNotFound(
            f"kernel {kernel.image} has no modules tree next to it, so it cannot load {', '.join(names)}: "
            "use the cached Debian kernel (the default)"
        )
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        path = _module_file(kernel, name)
        if path is None:
            if not _built_in(kernel, name):
                raise KernelNotFound(f"kernel {kernel.release} has no module {name} (neither a .ko nor built in)")
            return
        for dep in _depends(path):
            visit(dep)
        order.append(path)

    for name in names:
        visit(name)
    return order


def module_contents(path: str) -> bytes:
    """A module file's bytes, decompressed: the guest loads it with finit_module() and no decompressor."""
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        import lzma

        return lzma.decompress(data)
    if path.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", path], capture_output=True, check=True).stdout
    return data
