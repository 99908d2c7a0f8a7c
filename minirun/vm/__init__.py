"""minirun's VM companion: the same ROOTFS and COMMAND, booted in a QEMU virtual machine.

    from minirun.vm import VMSpec, run
    result = run(VMSpec(rootfs="/var/lib/minirun/rootfs/busybox", args=["echo", "hi"]))

Importing this package is cheap: the QEMU/QMP/asyncio machinery (``runner``,
``machine``, ``qmp``) is imported on first use, so ``minirun --help`` and the
container path never pay for it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms before QEMU can start

__all__ = ["run", "VMSpec", "VMResult"]

if TYPE_CHECKING:
    from .runner import VMResult, VMSpec, run


def __getattr__(name: str):
    if name in __all__:
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
