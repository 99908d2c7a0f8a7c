"""The command-line start paths stay light: an interpreter start is most of a container's
start from the shell, and an engine starts `minirun-oci` four or five times per container."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig

import minirun
from front_exec import exec_line, is_native
from helpers import needs_root

# Each of these imports enum, functools or collections (re, json, signal, threading,
# typing ...): a few ms per start on this project's host.
HEAVY = ("enum", "re", "json", "signal", "threading", "collections", "functools", "typing", "dataclasses",
         "click", "subprocess", "inspect")
CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(minirun.__file__)))
BIN = os.path.dirname(sys.executable)


# minirun's own modules that a plain foreground `minirun run` does without (~0.1-0.2 ms each at
# every start): imported where an option or a rare case needs them.
RUN_LEAVES_OUT = ("minirun.cleanup", "minirun.sysctl", "minirun.lifecycle", "minirun.network", "minirun.portproxy",
                  "minirun.tty", "minirun.logfiles", "minirun.seccomp_build", "minirun.seccomp_guard", "minirun.join",
                  "minirun.cli")
RUN_PATH = ("import minirun.entry, minirun.runopts, minirun.runverb, minirun.container, minirun.syscalls, "
            "minirun.seccomp, minirun.security, minirun.state, minirun.cgroups")


def _imported_by(statements: str, names=HEAVY) -> list[str]:
    """Which of ``names`` ``statements`` import in an interpreter started as the native front starts it
    (csrc/front.c)."""
    path = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], CHECKOUT]
    code = f"import sys; sys.path += {path!r}; {statements}; print(sorted(m for m in {names!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True)
    return eval(out.stdout)  # noqa: S307 - our own printed list


def test_run_path_imports_nothing_heavy():
    assert _imported_by(RUN_PATH) == []


def test_run_path_leaves_out_the_modules_a_plain_run_does_not_need():
    assert _imported_by(RUN_PATH, RUN_LEAVES_OUT) == []


def _loaded_by_the_import_system(entry: str, argv: list[str], scratch) -> set[str]:
    """The modules of minirun that -X importtime lists for ``argv`` run as the native front runs
    ``entry``. Its stderr is a file: a created container's init keeps it open until it goes."""
    path = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], CHECKOUT]
    boot = f"import sys; sys.path += {path!r}; sys.argv = {argv!r}; from minirun.front import start; start({entry!r})"
    with open(os.path.join(scratch, "importtime"), "w+") as err:
        code = subprocess.run([sys.executable, "-I", "-S", "-X", "importtime", "-c", boot], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=err).returncode
        err.seek(0)
        lines = err.read().splitlines()
    assert code == 0, lines[-5:]
    loaded = {line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time:")}
    return {name for name in loaded if name.startswith("minirun")}


# What a plain run imports before entry.py's `with cached("run")`; every other module of the package
# a plain run imports must come from that cache (an extension, _native, cannot).
BEFORE_THE_RUN_CACHE = {"minirun", "minirun.front", "minirun.errors", "minirun.entry", "minirun.importcache",
                        "minirun._native"}


@needs_root
def test_a_plain_run_takes_every_module_it_imports_from_the_run_cache(rootfs, tmp_path):
    """-X importtime names each module the import system loads: once the cache is written (the first
    run), a plain run's own modules are none of them, so the list in entry.py is whole."""
    argv = ["minirun", "run", "--rm", "--memory", "64m", "--cpus", "0.5", "--pids-limit", "64", rootfs, "/bin/true"]
    for _ in range(2):
        loaded = _loaded_by_the_import_system("minirun.entry:main", argv, tmp_path)
    assert loaded == BEFORE_THE_RUN_CACHE


# What an OCI create imports before oci/main.py's `with cached("oci-create")` (its own module-level imports).
BEFORE_THE_OCI_CACHE = {"minirun", "minirun.front", "minirun.errors", "minirun.oci", "minirun.oci.main",
                        "minirun.oci.log", "minirun.oci.store", "minirun.jsonlite", "minirun.ids", "minirun.settings",
                        "minirun.state", "minirun.core", "minirun.quickexit", "minirun._native", "minirun.ociverbs",
                        "minirun.importcache"}


@needs_root
def test_an_oci_create_takes_every_module_it_imports_from_the_oci_cache(rootfs, tmp_path):
    """The first create writes the cache (or finds it), the second must import none of the modules
    oci/main.py's `with cached("oci-create")` names, nor any they import."""
    bundle, root = tmp_path / "bundle", str(tmp_path / "root")
    bundle.mkdir()
    subprocess.run([os.path.join(BIN, "minirun-oci"), "spec", "--bundle", str(bundle)], check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["root"]["path"], config["process"]["args"], config["process"]["terminal"] = rootfs, ["/bin/true"], False
    (bundle / "config.json").write_text(json.dumps(config))
    try:
        for n in range(2):
            argv = ["minirun-oci", "--root", root, "create", "--bundle", str(bundle), f"c{n}"]
            loaded = _loaded_by_the_import_system("minirun.oci.main:cli", argv, tmp_path)
    finally:
        for n in range(2):
            subprocess.run([os.path.join(BIN, "minirun-oci"), "--root", root, "delete", "--force", f"c{n}"],
                           capture_output=True)
    assert loaded == BEFORE_THE_OCI_CACHE


def test_oci_paths_import_nothing_heavy():
    assert _imported_by("import minirun.oci.main, minirun.oci.runtime, minirun.oci.store, minirun.oci.bundle, "
                        "minirun.join, minirun.container, minirun.syscalls") == []


def test_the_executables_are_the_native_front():
    for name in ("minirun", "minirun-oci"):
        assert is_native(os.path.join(BIN, name)), name
    out = subprocess.run([os.path.join(BIN, "minirun-oci"), "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "minirun-oci version" in out.stdout, out
    # Every other `minirun` command gets the usual sys.path (site.main(): click, .pth files).
    out = subprocess.run([os.path.join(BIN, "minirun"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "run" in out.stdout, out


def _fast_path_of(executable: str, scratch: str) -> list[str]:
    """The interpreter, flags and sys.path entries the front gave Python; its error checked."""
    cmdline, out = exec_line(executable, scratch)
    assert out.returncode == 1 and out.stderr == "minirun-oci: container 'nosuch' does not exist\n", out
    return cmdline[:cmdline.index("--")]


@needs_root
def test_without_proc_the_front_finds_itself_as_the_path_search_did():
    """In a mount namespace of our own without /proc: argv[0] has no slash, PATH found it."""
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"))
    out = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                          "umount -l /proc && exec minirun-oci --version"], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.startswith("minirun-oci version"), out


def test_the_front_runs_python_isolated_with_what_site_would_add(tmp_path):
    line = _fast_path_of(os.path.join(BIN, "minirun-oci"), str(tmp_path))
    site_packages = sysconfig.get_paths()["purelib"]
    # an install of the package, or (make venv's compat editable install) the checkout its .pth names
    installed = os.path.isdir(os.path.join(site_packages, "minirun"))
    package_path = [site_packages] if installed else [site_packages, CHECKOUT]
    assert line[:3] == [os.path.join(BIN, f"python{sysconfig.get_python_version()}"), "-I", "-S"], line
    assert line[3] == "-c" and line[5:] == package_path, line
    # and no import misses on the way (minirun/front.py would run site): the same start, timed per import
    timed = subprocess.run([*line[:3], "-X", "importtime", *line[3:], "--", "minirun-oci", "--root",
                            str(tmp_path / "root"), "state", "nosuch"], capture_output=True, text=True)
    imported = [entry.rsplit("|", 1)[-1].strip() for entry in timed.stderr.splitlines()
                if entry.startswith("import time:")]
    assert "minirun.oci.main" in imported and "site" not in imported, timed.stderr


def test_a_symlink_to_the_front_finds_the_install_it_points_into(tmp_path):
    """An engine's configuration may name a link to minirun-oci."""
    link = tmp_path / "runtime"
    link.symlink_to(os.path.join(BIN, "minirun-oci"))
    (tmp_path / "direct").mkdir()
    assert _fast_path_of(str(link), str(tmp_path)) == _fast_path_of(os.path.join(BIN, "minirun-oci"),
                                                                     str(tmp_path / "direct"))


def test_a_front_away_from_its_install_takes_the_slow_way(tmp_path):
    """No site-packages beside it: the interpreter it was built for, with site, as pip's console script."""
    copy = tmp_path / "bin" / "minirun-oci"
    copy.parent.mkdir()
    shutil.copy2(os.path.join(BIN, "minirun-oci"), copy)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([CHECKOUT, sysconfig.get_paths()["purelib"]]))
    cmdline, out = exec_line(str(copy), str(tmp_path), env=env)
    assert out.returncode == 1 and "container 'nosuch' does not exist" in out.stderr, out
    assert cmdline[1] == "-c" and cmdline[3] == "--", cmdline


def test_an_import_the_fast_path_misses_runs_site_and_is_found(tmp_path):
    """A dependency outside minirun's own site-packages (system site-packages, a --user install)."""
    (tmp_path / "probe_entry.py").write_text(
        "import sys\n"
        "def main():\n"
        "    assert 'site' not in sys.modules\n"
        "    import click  # not on an -I -S sys.path\n"
        "    print('site' in sys.modules, click.__name__)\n")
    code = (f"import sys; sys.path += [{CHECKOUT!r}, {str(tmp_path)!r}]; "
            "from minirun.front import start; start('probe_entry:main')")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout == "True click\n", out


def test_the_front_keeps_the_cyclic_gc_out_of_a_start_but_on(tmp_path):
    """A start's imports gave the GC nothing to free, but ~0.9 ms of scanning per `minirun run`;
    a process that lives on (minirun-shim, `logs -f`) must still collect."""
    from minirun.front import GC_THRESHOLD

    (tmp_path / "probe_entry.py").write_text("import gc\ndef main():\n    print(gc.isenabled(), gc.get_threshold()[0])\n")
    code = (f"import sys; sys.path += [{CHECKOUT!r}, {str(tmp_path)!r}]; "
            "from minirun.front import start; start('probe_entry:main')")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.split() == ["True", str(GC_THRESHOLD)], out
    assert 700 < GC_THRESHOLD <= 100_000


def test_the_site_run_after_a_miss_includes_the_users_site_packages(tmp_path):
    """As pip's console script has it (outside a venv): a dependency in the user's site-packages."""
    user_site = tmp_path / "userbase" / "lib" / f"python{sysconfig.get_python_version()}" / "site-packages"
    user_site.mkdir(parents=True)
    (user_site / "probe_dep.py").write_text("")
    (tmp_path / "probe_entry.py").write_text("def main():\n    import probe_dep\n    print(probe_dep.__file__)\n")
    code = (f"import sys; sys.path += [{CHECKOUT!r}, {str(tmp_path)!r}]; "
            "from minirun.front import start; start('probe_entry:main')")
    base = getattr(sys, "_base_executable", sys.executable)  # not a venv's: a venv leaves user site out
    out = subprocess.run([base, "-I", "-S", "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONUSERBASE=str(tmp_path / "userbase")))
    assert out.returncode == 0 and out.stdout == f"{user_site / 'probe_dep.py'}\n", out


def _oci_verbs_sources() -> list[str]:
    """setup.py's OCI_VERBS_SOURCES: what minirun-oci links beside front.c (declared once, there)."""
    import ast

    with open(os.path.join(CHECKOUT, "setup.py")) as f:
        tree = ast.parse(f.read())
    value = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                 and any(getattr(target, "id", None) == "OCI_VERBS_SOURCES" for target in node.targets))
    return [os.path.join(CHECKOUT, source) for source in ast.literal_eval(value)]


def _build_front(tmp_path, python: str, pyver: str = "0.0", oci: bool = False) -> str:
    """A front built for ``python`` (FRONT_PYTHON) and a Python version no host has (so neither
    /usr/bin's, /usr/local/bin's nor PATH's interpreter is taken), away from any install."""
    out = tmp_path / "bin" / ("minirun-oci" if oci else "minirun")
    out.parent.mkdir(exist_ok=True)
    sources = [os.path.join(CHECKOUT, "csrc", "front.c")] + (_oci_verbs_sources() if oci else [])
    entry = "minirun.oci.main:cli" if oci else "minirun.entry:main"
    subprocess.run(["gcc", "-Wall", "-Werror", f"-I{CHECKOUT}/csrc", f'-DFRONT_PYVER="{pyver}"',
                    f'-DFRONT_PYTHON="{python}"', f'-DFRONT_ENTRY="{entry}"', *(["-DFRONT_OCI"] if oci else []),
                    "-o", str(out), *sources], check=True)
    return str(out)


def _planted_python(directory, marker) -> str:
    """An "interpreter" that only leaves ``marker`` behind, at directory/bin/python0.0."""
    (directory / "bin").mkdir(parents=True)
    python = directory / "bin" / "python0.0"
    python.write_text(f"#!/bin/sh\necho ran > {marker}\n")
    python.chmod(0o755)
    return str(python)


@needs_root
def test_the_front_runs_no_interpreter_another_user_can_change(tmp_path):
    """The interpreter a wheel was built with (FRONT_PYTHON) may be in another user's home, or in
    /tmp once its build venv is gone: root's minirun-oci must not run what that user put there."""
    marker = tmp_path / "ran"
    theirs = tmp_path / "theirs"
    python = _planted_python(theirs, marker)
    os.chown(theirs, 65534, 65534)  # nobody's directory: they could have put anything in it
    out = subprocess.run([_build_front(tmp_path, python), "--version"], capture_output=True, text=True)
    assert not marker.exists() and out.returncode == 125, out

    shared = tmp_path / "shared"  # root's, but anyone may replace what is in it
    python = _planted_python(shared, marker)
    os.chmod(shared / "bin", 0o777)
    out = subprocess.run([_build_front(tmp_path, python), "--version"], capture_output=True, text=True)
    assert not marker.exists() and out.returncode == 125, out

    os.chmod(shared / "bin", 0o755)  # the control: the same interpreter, now only root's to change
    out = subprocess.run([_build_front(tmp_path, python), "--version"], capture_output=True, text=True)
    assert marker.read_text() == "ran\n" and out.returncode == 0, out


@needs_root
def test_the_front_finds_no_interpreter_on_path_another_user_can_change(tmp_path):
    """The last place it looks: not in another user's directory, nor in a relative entry (an
    engine runs minirun-oci in the bundle's directory)."""
    marker = tmp_path / "ran"
    front = _build_front(tmp_path, "/nonexistent/python0.0")
    theirs, ours = tmp_path / "theirs", tmp_path / "ours"
    _planted_python(theirs, marker)
    os.chown(theirs / "bin", 65534, 65534)
    _planted_python(ours, marker)
    for path, cwd in ((str(theirs / "bin"), None), ("bin", ours), (":", ours / "bin")):
        out = subprocess.run([front, "--version"], capture_output=True, text=True, cwd=cwd, env={"PATH": path})
        assert not marker.exists() and out.returncode == 125, (path, out)
    out = subprocess.run([front, "--version"], capture_output=True, text=True, env={"PATH": str(ours / "bin")})
    assert marker.read_text() == "ran\n" and out.returncode == 0, out  # the control


def test_without_an_interpreter_each_front_fails_by_its_own_contract(tmp_path):
    """errors.py's table: the host lacks something, one line prefixed with the program's name."""
    for oci, code in ((False, 125), (True, 1)):
        out = subprocess.run([_build_front(tmp_path, "/nonexistent/python0.0", oci=oci), "--version"],
                             capture_output=True, text=True)
        program = "minirun-oci" if oci else "minirun"
        assert out.returncode == code and out.stderr.startswith(f"{program}: no python0.0") and \
            out.stderr.count("\n") == 1, out


# An object whose finalizer speaks only if the interpreter's teardown runs (it clears __main__).
_TEARDOWN_WITNESS = ("import sys\n"
                     "class Witness:\n"
                     "    def __del__(self): print('teardown', flush=True)\n"
                     "witness = Witness()\n")


def test_exit_now_runs_the_atexit_handlers_and_skips_the_teardown():
    code = _TEARDOWN_WITNESS + ("import atexit, logging  # logging registers an atexit handler of its own\n"
                                "atexit.register(print, 'handler', flush=True)\n"
                                "from minirun.quickexit import exit_now\n"
                                "exit_now(3)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=CHECKOUT)
    assert (out.returncode, out.stdout) == (3, "handler\n"), out


def test_vm_run_exits_without_the_teardown(tmp_path):
    """A VM run has loaded asyncio and qemu.qmp by its end: their teardown would add ~15 ms to every run."""
    code = _TEARDOWN_WITNESS + "from minirun.entry import main\nmain(['vm', 'run', '/', '/bin/true'])\n"
    env = dict(os.environ, MINIRUN_QEMU=str(tmp_path / "no-qemu"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=CHECKOUT, env=env)
    assert out.returncode == 125 and "not found" in out.stderr, out
    assert "teardown" not in out.stdout, out


# What `minirun vm run` imports before QEMU starts: the boot waits for each of them.
VM_RUN_PATH = ("import minirun.entry, minirun.runopts, minirun.vm.runverb, minirun.vm.runner, minirun.spec, "
               "minirun.state")


def test_vm_run_path_imports_neither_click_nor_typing_nor_dataclasses_nor_json():
    assert _imported_by(VM_RUN_PATH, ("click", "typing", "dataclasses", "inspect", "json")) == []
