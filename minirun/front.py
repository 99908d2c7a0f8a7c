"""The Python half of the `minirun` and `minirun-oci` executables (csrc/front.c).

The native front runs the interpreter with ``-I -S`` (isolated: no PYTHON*
variables, no user site, no working directory on sys.path; no site) and only
the sys.path entries that hold minirun. A dependency installed elsewhere (a
venv with system site-packages, a ``--user`` install beside the system's cffi)
is then not on sys.path: the first top-level import that misses runs site,
as pip's console script would have from the start, and is tried again.
"""

from __future__ import annotations

import sys


class SiteOnFirstMiss:
    """The last finder on sys.meta_path while site has not run."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if path is not None or "site" in sys.modules:
            return None  # a submodule: site adds no package's inside
        sys.meta_path.remove(SiteOnFirstMiss)
        import site

        site.main()
        from importlib.machinery import PathFinder

        return PathFinder.find_spec(name)


def start(entry: str) -> None:
    """Call ``entry`` ("module:function", as pip's console script does) and exit with its result."""
    if "site" not in sys.modules:
        sys.meta_path.append(SiteOnFirstMiss)
    module, function = entry.split(":")
    sys.exit(getattr(__import__(module, fromlist=[function]), function)())
