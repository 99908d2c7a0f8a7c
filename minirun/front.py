"""The Python half of the `minirun` and `minirun-oci` executables (csrc/front.c).

The native front runs the interpreter with ``-I -S`` (isolated: no PYTHON*
variables, no working directory on sys.path; no site) and only the sys.path
entries that hold minirun. A dependency installed elsewhere (a venv with system
site-packages, the user's site-packages beside a system install) is then not on
sys.path: the first top-level import that misses runs site as pip's console
script would have from the start, and is tried again.
"""

from __future__ import annotations

import gc
import sys


# Without -S, site ran at start-up. (Not "site" in sys.modules: a library may import it under -S.)
_site_ran = [not sys.flags.no_site]


def run_site() -> None:
    """What site does at a start without -I -S, once: the .pth files, the system's and the user's
    site-packages (-I turned the user's off; site's own rule says whether they count)."""
    if _site_ran[0]:
        return
    _site_ran[0] = True
    import os
    import site

    site.ENABLE_USER_SITE = os.getuid() == os.geteuid() and os.getgid() == os.getegid()
    site.main()


class SiteOnFirstMiss:
    """The last finder on sys.meta_path while site has not run."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if path is not None or _site_ran[0]:
            return None  # a submodule: site adds no package's inside
        sys.meta_path.remove(SiteOnFirstMiss)
        run_site()
        from importlib.machinery import PathFinder

        return PathFinder.find_spec(name)


GC_THRESHOLD = 20_000  # allocations between two young collections (CPython's default: 700)


def start(entry: str) -> None:
    """Call ``entry`` ("module:function", as pip's console script does) and exit with its result."""
    # What a start allocates (modules, classes, functions) lives until the exit: the cyclic
    # GC had nothing to free in it, yet scanned it four times and the older generation once
    # per `minirun run` (~0.9 ms here). A process that lives on (a detached container's
    # shim, `logs -f`) still collects, less often.
    gc.set_threshold(GC_THRESHOLD)
    if not _site_ran[0]:
        sys.meta_path.append(SiteOnFirstMiss)
    module, function = entry.split(":")
    sys.exit(getattr(__import__(module, fromlist=[function]), function)())
