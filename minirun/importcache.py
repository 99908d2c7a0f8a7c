"""A start-up cache of a hot path's imports: the compiled code of every module of
this package that the path imports, in one file, run without the import system.

    with importcache.cached("run", __name__):
        from .runverb import execute_run

Python's import system finds, checks, creates and executes each module in Python
code of its own: for the ~30 modules of `minirun run`, ~2 ms of a ~19 ms start
here, about a tenth. (CPython freezes its own start-up modules, os and site among
them, for the same reason.) Inside ``cached(NAME, OWNER)``:

- with a valid cache, every module in it is registered in sys.modules and executed,
  in the order their imports finished, before the block's imports run: they find
  them there. A module of the cache that raises is taken out again with the others
  and the block imports as usual.
- without one, the block imports as usual, the order the modules finish in is
  recorded, and the cache is written for the next start.

The cache is kept beside the .pyc files, __pycache__/NAME.TAG.imports, and checked
as they are: each module's source must have the size and mtime it had, and the
interpreter the bytecode magic; so must the module that holds the block (``owner``), whose
imports say what the cache holds. It is written where the .pyc files would be (never
under -B, never where __pycache__ is missing or not ours to write), by a rename.
Only modules of this package are cached, from their own directory: a copy of the
package elsewhere makes its own cache. `pip uninstall` leaves the file, as it leaves
the .pyc files of other interpreters, and with it a `minirun/__pycache__/` directory.
"""

from __future__ import annotations

import marshal
import os
import sys

_bootstrap = sys.modules["_frozen_importlib_external"]  # importlib's, without importing importlib
_frozen_importlib = sys.modules["_frozen_importlib"]
_imp = sys.modules["_imp"]
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_BASE = os.path.dirname(_PACKAGE_DIR)  # the sys.path entry that holds the package
_PREFIX = __package__ + "."


def cache_path(name: str) -> str:
    return os.path.join(_PACKAGE_DIR, "__pycache__", f"{name}.{sys.implementation.cache_tag}.imports")


class cached:
    """``with cached(name, __name__):`` the imports of the block, from the cache or recorded into it."""

    def __init__(self, name: str, owner: str):
        self.path = cache_path(name)
        self.owner = _stamp(sys.modules[owner].__file__)
        self.recorder = None

    def __enter__(self):
        if not load(self.path, self.owner) and not sys.dont_write_bytecode:
            self.recorder = _Recorder()
            sys.meta_path.insert(0, self.recorder)
        return self

    def __exit__(self, kind, value, traceback):
        if self.recorder is None:
            return
        sys.meta_path.remove(self.recorder)
        if kind is None:
            write(self.path, self.owner, self.recorder.finished)


def _stamp(source: str) -> tuple[int, int]:
    st = os.stat(source)
    return st.st_size, st.st_mtime_ns


def load(path: str, owner: tuple[int, int]) -> bool:
    """Register and execute the modules cached in ``path`` for a block whose module has the
    ``owner`` stamp; False (nothing changed) if it is missing, stale or fails."""
    try:
        with open(path, "rb") as f:
            magic, owner_then, entries = marshal.loads(f.read())
        if magic != _bootstrap.MAGIC_NUMBER or tuple(owner_then) != owner:
            return False
        parents = set(sys.modules) | {entry[0] for entry in entries}  # where each module's package comes from
        sources = [source_of(name, package) for name, package, *_ in entries]
        for (name, _package, size, mtime_ns, _code), source in zip(entries, sources):
            if name.rpartition(".")[0] not in parents or _stamp(source) != (size, mtime_ns):
                return False
    except (OSError, EOFError, ValueError, TypeError):
        return False
    new = [(entry, source) for entry, source in zip(entries, sources) if entry[0] not in sys.modules]
    modules = [_register(entry[0], entry[1], source) for entry, source in new]
    for module in modules:  # once all are there: a package finishes after the modules it imports
        parent, _, child = module.__name__.rpartition(".")
        setattr(sys.modules[parent], child, module)
    try:
        for module, (entry, _source) in zip(modules, new):
            code = entry[-1]
            _imp._fix_co_filename(code, module.__file__)  # as a .pyc's, if the tree was moved with its cache
            exec(code, module.__dict__)
    except BaseException as exc:  # noqa: BLE001 - whatever the cached code raised, the import system raises it again
        for module in modules:  # all gone, from their parents too (`from minirun import x` looks there)
            sys.modules.pop(module.__name__, None)
            parent, _, child = module.__name__.rpartition(".")
            if getattr(sys.modules.get(parent), child, None) is module:
                delattr(sys.modules[parent], child)
        if not isinstance(exc, Exception):
            raise  # an interrupt, as an import's: with no module left that did not run
        return False
    return True


def source_of(name: str, package: bool) -> str:
    """Where the path finder finds module ``name`` of this package."""
    if not name.startswith(_PREFIX):
        raise ValueError(f"{name} is not a module of {__package__}")
    path = os.path.join(_BASE, *name.split("."))
    return os.path.join(path, "__init__.py") if package else path + ".py"


def _register(name: str, package: bool, path: str):
    """The module the import system would make of ``name``'s source at ``path``, in sys.modules."""
    module = type(sys)(name)
    spec = _bootstrap.spec_from_file_location(name, path, loader=_bootstrap.SourceFileLoader(name, path),
                                              submodule_search_locations=[os.path.dirname(path)] if package else None)
    spec.cached = module.__cached__ = _bootstrap.cache_from_source(path)
    module.__spec__, module.__loader__, module.__file__ = spec, spec.loader, path
    module.__package__ = name if package else name.rpartition(".")[0]
    if package:
        module.__path__ = spec.submodule_search_locations
    sys.modules[name] = module
    return module


def write(path: str, owner: tuple[int, int], finished: list) -> None:
    """The cache of ``finished`` (name, source, stamp, code), in that order; nothing where it cannot be written."""
    entries = []
    for name, source, stamp, code in finished:
        package = os.path.basename(source) == "__init__.py"
        if source != source_of(name, package):
            return  # not where the path finder looks first (a namespace package, a path hook): no cache
        entries.append((name, package, *stamp, code))
    temp = f"{path}.{os.getpid()}"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError:
        return  # not ours to write, or another's file by that name: left alone
    try:
        with open(fd, "wb") as f:
            f.write(marshal.dumps((_bootstrap.MAGIC_NUMBER, owner, entries)))
        os.rename(temp, path)
    except BaseException as exc:  # an interrupt too: no temporary left behind
        try:
            os.unlink(temp)
        except OSError:
            pass
        if not isinstance(exc, OSError):
            raise


class _Recorder:
    """First on sys.meta_path while a block records: finds this package's source modules as the
    path finder does, and notes each one as its execution finishes."""

    def __init__(self):
        self.finished: list[tuple[str, str, tuple[int, int], object]] = []

    def find_spec(self, name, path=None, target=None):
        if not name.startswith(_PREFIX):
            return None
        spec = _bootstrap.PathFinder.find_spec(name, path)
        if spec is not None and type(spec.loader) is _bootstrap.SourceFileLoader:
            spec.loader = _Noting(spec.loader, self.finished)
        return spec


class _Noting:
    """A source loader's stand-in during the load only: the module keeps the real one."""

    def __init__(self, loader, finished):
        self.loader, self.finished = loader, finished

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self.loader
        stamp = _stamp(module.__file__)  # before the code is read: a source changed since is newer than the cache
        code = self.loader.get_code(module.__name__)
        _frozen_importlib._call_with_frames_removed(exec, code, module.__dict__)  # as the loader's exec_module
        self.finished.append((module.__name__, module.__file__, stamp, code))
