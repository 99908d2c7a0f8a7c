"""Write the `minirun` and `minirun-oci` executables of a venv as small launchers.

    .venv/bin/python scripts/launchers.py .venv/bin      (`make venv` runs it after pip)

pip's console script runs the interpreter with site (the venv's .pth files: ~2 ms)
and imports ``re`` (with ``enum``: ~4 ms) before minirun's own code; an engine
starts `minirun-oci` four or five times per container. A launcher runs the same
interpreter with ``-I -S`` (isolated: no PYTHON* variables, no user site, no
script directory on sys.path; no site) and the path entries that site would have
added, written in here. `minirun` commands other than `run` call ``site.main()``
first (entry.py), so click, pyroute2 and the VM companion see the usual sys.path.

The entry points stay declared in pyproject.toml: an install without this step
gets pip's wrappers, which behave the same, a few ms slower.
"""

from __future__ import annotations

import os
import sys
import sysconfig

# As [project.scripts] in pyproject.toml: name -> (module, function)
ENTRY_POINTS = {"minirun": ("minirun.entry", "main"), "minirun-oci": ("minirun.oci.main", "cli")}

TEMPLATE = """#!{python} -IS
# Written by minirun's scripts/launchers.py: pip's console script, minus site and
# `import re` (-I: PYTHON* variables, user site and the script's directory ignored).
import sys
sys.path += {path!r}
from {module} import {function}
sys.exit({function}())
"""


_SHEBANG_MAX = 255  # the kernel reads at most this much of a #! line (BINPRM_BUF_SIZE - 1, Linux 5.1+)


def search_path() -> list[str]:
    """What site adds to sys.path in this interpreter (site-packages, then .pth
    entries such as an editable install's checkout), in site's order."""
    import minirun

    checkout = os.path.dirname(os.path.dirname(os.path.abspath(minirun.__file__)))
    paths = sysconfig.get_paths()
    return list(dict.fromkeys([paths["purelib"], paths["platlib"], checkout]))


def write(bindir: str) -> list[str]:
    python = os.path.join(os.path.abspath(bindir), "python")
    if not os.path.exists(python):
        python = sys.executable
    if " " in python or len(f"#!{python} -IS") > _SHEBANG_MAX:
        return []  # the kernel cannot run such a #! line: pip's wrappers (a /bin/sh trick) stay
    path = search_path()
    written = []
    for name, (module, function) in ENTRY_POINTS.items():
        target = os.path.join(bindir, name)
        tmp = target + ".tmp"
        with open(tmp, "w") as f:
            f.write(TEMPLATE.format(python=python, path=path, module=module, function=function))
        os.chmod(tmp, 0o755)
        os.rename(tmp, target)
        written.append(target)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: launchers.py BINDIR")
    for target in write(sys.argv[1]):
        print(f"launcher: {target}")
