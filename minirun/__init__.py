"""minirun: a small container runtime you can read, and a VM companion to compare it with.

    import minirun
    from minirun.spec import ContainerSpec, Process, Limits
    result = minirun.run(ContainerSpec(rootfs="/var/lib/minirun/rootfs/busybox",
                                       process=Process(["/bin/echo", "hi"]),
                                       limits=Limits(memory=64 << 20)))
    result.exit_code, result.oom_killed, result.timings

Names are resolved lazily so that importing minirun costs almost nothing.
"""

from __future__ import annotations

__all__ = ["run", "ContainerSpec", "Process", "Limits", "Result", "MiniRunError"]
__version__ = "0.1.0"

_LAZY = {
    "run": ("minirun.container", "run"),
    "ContainerSpec": ("minirun.spec", "ContainerSpec"),
    "Process": ("minirun.spec", "Process"),
    "Limits": ("minirun.spec", "Limits"),
    "Result": ("minirun.result", "Result"),
    "MiniRunError": ("minirun.errors", "MiniRunError"),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'minirun' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    return getattr(importlib.import_module(module), attr)
