"""minirun.importcache: a hot path's modules from one file, without the import system, and
exactly the modules the import system would have made. Each test runs a copy of the package
(its own __pycache__) in an interpreter started as the native front starts it (-I -S)."""

from __future__ import annotations

import marshal
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

import minirun

PACKAGE = os.path.dirname(os.path.abspath(minirun.__file__))
SITE = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
TAG = sys.implementation.cache_tag

# A block of imports as entry.py's `run` has, a spy on the import system (the names the block's imports
# asked it for), and what the modules are made of.
BLOCK = """
import sys, json
asked = []
class Spy:
    @staticmethod
    def find_spec(name, path=None, target=None):
        asked.append(name)
from minirun.importcache import cached
before = set(sys.modules)
try:
    with cached("test", __name__):
        sys.meta_path.insert(0, Spy)  # once the cache is loaded: the misses that reach the import system
        from minirun import container, ociverbs, seccomp, syscalls, runverb
        sys.meta_path.remove(Spy)
except KeyboardInterrupt:  # what an interrupted import leaves in sys.modules: the modules it made not yet run
    print(json.dumps(dict(unexecuted=[n for n in sys.modules if n not in before and "__builtins__" not in vars(sys.modules[n])])))
    raise SystemExit

def shape(module):
    spec = module.__spec__
    return dict(names=sorted(vars(module)), file=module.__file__, cached=module.__cached__,
                package=module.__package__, path=getattr(module, "__path__", None), origin=spec.origin,
                loader=type(module.__loader__).__name__, spec_loader=type(spec.loader).__name__,
                search=spec.submodule_search_locations)

new = sorted(n for n in sys.modules if n not in before and n.startswith("minirun."))
print(json.dumps(dict(asked=[n for n in asked if n.startswith("minirun.")], new=new,
                      shapes={n: shape(sys.modules[n]) for n in new if hasattr(sys.modules[n], "__file__")
                              and sys.modules[n].__file__.endswith(".py")},
                      extra=getattr(sys.modules["minirun.policy"], "CHANGED", None))))
"""


@pytest.fixture
def tree(tmp_path):
    """A copy of the package, extensions and all, with no __pycache__ of its own yet; beside it
    block.py, the block's owner."""
    shutil.copytree(PACKAGE, tmp_path / "minirun", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "block.py").write_text(f"import sys; sys.path[:0] = {[str(tmp_path), *SITE]!r}\n" + BLOCK)
    return tmp_path


def start(tree, *flags: str) -> dict:
    import json

    out = subprocess.run([sys.executable, "-I", "-S", *flags, str(tree / "block.py")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def cache_file(tree) -> str:
    return os.path.join(tree, "minirun", "__pycache__", f"test.{TAG}.imports")


def test_the_first_start_writes_the_cache_the_next_runs_the_same_modules_from_it(tree):
    first = start(tree)
    assert "minirun.container" in first["asked"] and os.path.exists(cache_file(tree))
    second = start(tree)
    assert second["asked"] == []  # not one module of the package went through the import system
    # ... and each is the module the import system made: the same names, file, spec, loader, package path
    assert second["new"] == first["new"] and second["shapes"] == first["shapes"]
    shapes = second["shapes"]
    assert shapes["minirun.cgroups"]["path"] == [os.path.join(tree, "minirun", "cgroups")]
    assert shapes["minirun.spec"]["loader"] == "SourceFileLoader"
    assert shapes["minirun.spec"]["file"] == os.path.join(tree, "minirun", "spec.py")


def test_a_changed_source_is_imported_again_and_the_cache_rewritten(tree):
    start(tree)
    with open(tree / "minirun" / "policy.py", "a") as f:
        f.write("\nCHANGED = 1\n")
    changed = start(tree)
    assert "minirun.policy" in changed["asked"] and changed["extra"] == 1
    again = start(tree)
    assert again["asked"] == [] and again["extra"] == 1


def test_a_changed_block_records_the_cache_again(tree):
    """The block's own imports say what the cache holds: one more or one less, the cache is not it."""
    start(tree)
    with open(tree / "block.py", "a") as f:
        f.write("# the block changed\n")
    assert "minirun.container" in start(tree)["asked"]
    assert start(tree)["asked"] == []


def break_code(tree, module: str, source: str) -> None:
    """The cache with ``source`` as ``module``'s code."""
    with open(cache_file(tree), "rb") as f:
        magic, owner, entries = marshal.loads(f.read())
    broken = [(name, package, size, mtime, compile(source, "x", "exec") if name == module else code)
              for name, package, size, mtime, code in entries]
    with open(cache_file(tree), "wb") as f:
        f.write(marshal.dumps((magic, owner, broken)))


def test_cached_code_that_raises_gives_way_to_the_import_system(tree):
    start(tree)
    break_code(tree, "minirun.spec", "raise RuntimeError('stale')")
    out = start(tree)
    assert "minirun.spec" in out["asked"] and "minirun.container" in out["asked"]
    assert out["shapes"]["minirun.spec"]["names"] == start(tree)["shapes"]["minirun.spec"]["names"]


def test_cached_code_interrupted_leaves_no_module_registered_but_not_run(tree):
    start(tree)
    break_code(tree, "minirun.spec", "raise KeyboardInterrupt")
    assert start(tree)["unexecuted"] == []


@pytest.mark.parametrize("damage", ["magic", "truncated", "foreign module", "module without its package"])
def test_a_cache_of_another_interpreter_or_a_damaged_one_is_ignored(tree, damage):
    start(tree)
    with open(cache_file(tree), "rb") as f:
        data = f.read()
    magic, owner, entries = marshal.loads(data)
    if damage == "magic":
        data = marshal.dumps((b"\0\0\r\n", owner, entries))
    elif damage == "truncated":
        data = data[:len(data) // 2]
    elif damage == "foreign module":  # a name outside the package: the cache is not for it, whatever its path says
        data = marshal.dumps((magic, owner, [("os", False, 0, 0, entries[0][-1]), *entries]))
    else:  # recorded where the package was imported before the block: its modules have no parent here
        data = marshal.dumps((magic, owner, [entry for entry in entries if entry[0] != "minirun.cgroups"]))
    with open(cache_file(tree), "wb") as f:
        f.write(data)
    assert "minirun.container" in start(tree)["asked"]
    assert start(tree)["asked"] == []  # rewritten by the start before


def test_no_cache_is_written_where_no_bytecode_is(tree):
    assert "minirun.container" in start(tree, "-B")["asked"]
    assert not os.path.exists(cache_file(tree))


def test_a_source_changed_while_the_cache_is_recorded_is_imported_again(tree):
    """An upgrade under a first start: the cache holds each module's code stamped as its source was
    before it was read, so the next start imports the new source, not the old code under its stamp."""
    once, policy = str(tree / "upgrade"), str(tree / "minirun" / "policy.py")
    open(once, "w").close()
    upgrade = (f"        import os\n        if os.path.exists({once!r}):  # once, after the imports, before the cache is written\n"
               f"            os.remove({once!r}); open({policy!r}, 'a').write('\\nCHANGED = 1\\n')\n")
    block = (tree / "block.py").read_text()
    (tree / "block.py").write_text(block.replace("        sys.meta_path.remove(Spy)\n", "        sys.meta_path.remove(Spy)\n" + upgrade))
    assert start(tree)["extra"] is None
    assert start(tree)["extra"] == 1


def test_an_interrupted_write_leaves_no_temporary(tmp_path, monkeypatch):
    from minirun import importcache

    def interrupted(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "rename", interrupted)
    with pytest.raises(KeyboardInterrupt):
        importcache.write(str(tmp_path / f"test.{TAG}.imports"), (0, 0), [])
    assert os.listdir(tmp_path) == []
