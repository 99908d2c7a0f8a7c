"""The command-line start paths stay light: an interpreter start is most of a container's
start from the shell, and an engine starts `minirun-oci` four or five times per container."""

from __future__ import annotations

import os
import subprocess
import sys

import minirun

# Each of these imports enum, functools or collections (re, json, signal, threading,
# typing ...): a few ms per start on this project's host.
HEAVY = ("enum", "re", "json", "signal", "threading", "collections", "functools", "typing", "dataclasses",
         "click", "subprocess", "inspect")
CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(minirun.__file__)))
BIN = os.path.dirname(sys.executable)


def _imported_by(statements: str) -> list[str]:
    """What ``statements`` import in an interpreter started as the launcher starts it."""
    import sysconfig

    path = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], CHECKOUT]
    code = f"import sys; sys.path += {path!r}; {statements}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True)
    return eval(out.stdout)  # noqa: S307 - our own printed list


def test_run_path_imports_nothing_heavy():
    assert _imported_by("import minirun.entry, minirun.runopts, minirun.runverb, minirun.container, "
                        "minirun.syscalls, minirun.seccomp, minirun.security, minirun.state, minirun.cgroups") == []


def test_oci_paths_import_nothing_heavy():
    assert _imported_by("import minirun.oci.main, minirun.oci.runtime, minirun.oci.store, minirun.oci.bundle, "
                        "minirun.join, minirun.container, minirun.syscalls") == []


def test_launchers_skip_site_and_find_the_package():
    for name in ("minirun", "minirun-oci"):
        with open(os.path.join(BIN, name)) as f:
            first = f.readline()
        assert first.startswith("#!") and first.rstrip().endswith(" -IS"), (name, first)
    out = subprocess.run([os.path.join(BIN, "minirun-oci"), "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "minirun-oci version" in out.stdout, out
    # Every other `minirun` command gets the usual sys.path (site.main(): click, .pth files).
    out = subprocess.run([os.path.join(BIN, "minirun"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "run" in out.stdout, out


def test_launchers_leave_pips_wrappers_where_a_shebang_cannot_run(tmp_path):
    """A venv path with a space, or longer than the kernel reads of a #! line: no launcher."""
    sys.path.insert(0, os.path.join(CHECKOUT, "scripts"))
    try:
        import launchers
    finally:
        sys.path.pop(0)
    for bindir in (tmp_path / "a venv" / "bin", tmp_path / ("v" * 250) / "bin"):
        bindir.mkdir(parents=True)
        (bindir / "python").write_text("")
        (bindir / "minirun").write_text("pip's wrapper")
        assert launchers.write(str(bindir)) == []
        assert (bindir / "minirun").read_text() == "pip's wrapper"
