"""`pip install minirun` from a wheel and from an sdist starts as `make venv`'s install does:
the same native front (csrc/front.c), the same interpreter flags, the package's own path.

Each install goes into a fresh venv of its own (the dependencies and the build tools come
from this venv through a .pth line, as a system's site-packages would; no index is asked),
or, as a system pip's /usr/local, under a --prefix with no interpreter beside it.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import sysconfig

import pytest

from front_exec import exec_line, is_native

CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
PYVER = sysconfig.get_python_version()


def _run(*args: str, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run(list(args), capture_output=True, text=True, **kw)
    assert out.returncode == 0, out
    return out


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, str]:
    """An sdist of the checkout, and the wheel pip builds from that sdist."""
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-c", f"from setuptools.build_meta import build_sdist; build_sdist({str(out)!r})",
         cwd=CHECKOUT)
    (sdist,) = glob.glob(str(out / "minirun-*.tar.gz"))
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(out), sdist)
    (wheel,) = glob.glob(str(out / "minirun-*.whl"))
    return {"sdist": sdist, "wheel": wheel}


def _fresh_venv(path) -> str:
    _run(sys.executable, "-m", "venv", "--without-pip", str(path))
    python = os.path.join(path, "bin", "python")
    site_packages = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    with open(os.path.join(site_packages, "deps-from-the-test-venv.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    return site_packages


def _install(kind: str, dist: str, where) -> tuple[str, str, str]:
    """Install ``dist``; return the scripts directory, the site-packages it went to, the interpreter
    the front should start. "prefix": no interpreter beside it, as a system pip's /usr/local."""
    if kind == "prefix":
        _run(sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "-q",
             "--prefix", str(where), dist)
        (site_packages,) = glob.glob(str(where / "lib" / f"python{PYVER}" / "*-packages"))
        return str(where / "bin"), site_packages, os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    site_packages = _fresh_venv(where)
    # --ignore-installed: this venv's minirun (seen through the .pth) is not pip's to replace
    _run(str(where / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--ignore-installed", "-q", dist)
    return str(where / "bin"), site_packages, str(where / "bin" / f"python{PYVER}")


@pytest.mark.parametrize("kind", ["wheel", "sdist", "prefix"])
def test_pip_install_gives_the_native_front(kind, dists, tmp_path):
    bindir, site_packages, python = _install(kind, dists["sdist" if kind == "sdist" else "wheel"], tmp_path / "inst")
    minirun, oci = os.path.join(bindir, "minirun"), os.path.join(bindir, "minirun-oci")
    assert is_native(minirun) and is_native(oci)
    if kind != "prefix":  # its dependencies (click) are the base interpreter's, if it has them
        assert _run(minirun, "--version").stdout == "minirun, version 0.1.0\n"
    assert _run(oci, "--version").stdout.startswith("minirun-oci version 0.1.0\n")
    state = subprocess.run([oci, "--root", str(tmp_path / "root"), "state", "nosuch"], capture_output=True, text=True)
    assert (state.returncode, state.stderr) == (1, "minirun-oci: container 'nosuch' does not exist\n"), state

    (tmp_path / "installed").mkdir()
    cmdline, out = exec_line(oci, str(tmp_path / "installed"))
    assert out.returncode == 1 and "container 'nosuch' does not exist" in out.stderr, out
    assert cmdline[:3] == [python, "-I", "-S"], cmdline
    assert cmdline[5:cmdline.index("--")] == [site_packages], cmdline  # the installed package, nothing else
    # the same start as make venv's editable install: the same executables, interpreter flags and boot code
    for name in ("minirun", "minirun-oci"):
        with open(os.path.join(bindir, name), "rb") as installed, open(os.path.join(BIN, name), "rb") as editable:
            assert installed.read() == editable.read(), f"{name} differs from make venv's (run make venv again?)"
    (tmp_path / "editable").mkdir()
    editable, _ = exec_line(os.path.join(BIN, "minirun-oci"), str(tmp_path / "editable"))
    assert cmdline[1:5] == editable[1:5]
