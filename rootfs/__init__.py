"""The default container root filesystem: a busybox tree built from Debian's
``busybox-static`` package.

    from minirun.rootfs import DEFAULT_ROOTFS, build
    build(DEFAULT_ROOTFS, progress=print)

or, without the CLI: ``python3 -m minirun.rootfs [DEST]``.
See builder.py for what goes into the tree.
"""

from __future__ import annotations

DEFAULT_ROOTFS = "/var/lib/minirun/rootfs/busybox"


def build(dest: str = DEFAULT_ROOTFS, progress=None, **kwargs) -> str:
    """Build (or confirm) the busybox rootfs at DEST; see builder.build."""
    from .builder import build as _build

    return _build(dest, progress=progress, **kwargs)


__all__ = ["DEFAULT_ROOTFS", "build"]
