"""The core both front ends drive (minirun/core.py): each step of a container's life is
written once. The graph test reads the package's source; the decoder runs real processes."""

from __future__ import annotations

import ast
import os
import signal

import minirun
from minirun.result import exit_code

PACKAGE_DIR = os.path.dirname(minirun.__file__)


def _sources():
    for directory, dirs, files in os.walk(PACKAGE_DIR):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                with open(path) as f:
                    yield os.path.relpath(path, os.path.dirname(PACKAGE_DIR)), ast.parse(f.read(), path)


def _where(predicate) -> set[str]:
    return {module for module, tree in _sources() for node in ast.walk(tree) if predicate(node)}


def _calls(name: str):
    """A call of ``name`` as an attribute (``os.WEXITSTATUS(...)``) or a bare name."""
    def predicate(node):
        if not isinstance(node, ast.Call):
            return False
        func = node.func
        return getattr(func, "attr", None) == name or getattr(func, "id", None) == name
    return predicate


def _top_level(name: str) -> set[str]:
    return {module for module, tree in _sources() for node in tree.body if _defines(name)(node)}


def _defines(name: str):
    return lambda node: isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name


def _native_spawn(node) -> bool:
    """``syscalls.spawn(...)``, or ``spawn`` imported from syscalls (QEMU's machine.spawn is another)."""
    if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("syscalls"):
        return any(alias.name == "spawn" for alias in node.names)
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "spawn"
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "syscalls")


def test_one_spawn_sequence_one_kill_and_reap_one_failure_mapping():
    assert _where(_native_spawn) == {"minirun/core.py"}  # minirun run, its supervisor, minirun-oci
    assert _where(lambda n: _defines("kill_and_reap")(n) or _defines("_kill_and_reap")(n)) == {"minirun/core.py"}
    assert _where(_defines("raise_for_failure")) == {"minirun/core.py"}
    assert _where(_calls("write_id_maps")) == {"minirun/core.py"}
    assert _where(_calls("add_pid")) == {"minirun/core.py"}


def test_one_exit_status_decoder_one_liveness_rule_one_id_check():
    assert _where(_calls("WEXITSTATUS")) == {"minirun/result.py"}
    assert _where(_calls("waitstatus_to_exitcode")) == set()  # another decoder, with its own 128+N
    # The rule is C (csrc/ocistore.c: the native verbs apply it too); state.alive is its one binding
    assert _where(_calls("mr_pid_alive")) == {"minirun/ociverbs.py"}
    assert _where(_calls("pid_alive")) == {"minirun/state.py"}
    assert _top_level("alive") == {"minirun/state.py"}  # (Container.alive asks it)
    assert _top_level("check_id") == {"minirun/ids.py"}


def _status_of(child) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            child()
        finally:
            os._exit(99)
    return os.waitpid(pid, 0)[1]


def test_exit_code_is_the_code_or_128_plus_the_signal():
    assert exit_code(_status_of(lambda: os._exit(0))) == 0
    assert exit_code(_status_of(lambda: os._exit(3))) == 3
    assert exit_code(_status_of(lambda: os.kill(os.getpid(), signal.SIGTERM))) == 128 + signal.SIGTERM
    assert exit_code(_status_of(lambda: os.kill(os.getpid(), signal.SIGKILL))) == 137
