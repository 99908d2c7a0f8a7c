"""seccomp filters from Docker, containers-common and OCI profiles.

The filter is built in the parent as classic BPF (minirun/seccomp_bpf.py,
deciding as libseccomp, the compiler runc, crun and youki use, whose syscall
tables it reads through cffi: minirun._seccomp): the child, C between clone
and exec, only hands those bytes to seccomp(2) (csrc/security.c).

One entry point for every caller (``minirun run``, the API, the OCI runtime)::

    build_filter(profile, caps=(), *, kernel=None) -> SeccompFilter(program, flags)
    filter_for(profile, caps=())                   -> the same, through the cache below

``profile`` is a dict in Docker's, containers-common's or the OCI spec's
(``linux.seccomp``) shape, or "default" (Docker's, minirun/seccomp_default.py);
``caps`` the capabilities COMMAND keeps, for Docker's includes/excludes. What
each field of the profile means is in minirun/seccomp_build.py, which does
the work; this module is what the run path imports.

Cost: building Docker's profile takes ~5 ms (~25 ms when libseccomp compiled
it), so programs are cached in /var/cache/minirun/seccomp
(rootless: $XDG_CACHE_HOME/minirun/seccomp), one file per key: the profile
(its JSON, or for "default" the identity of its source file), the capabilities, the
kernel version (minKernel), libseccomp's version and the compiler's source. A
cached default run costs ~0.4 ms here. The directory must be ours and not
writable by others, else it is ignored: a planted program would disarm the filter.

Beside them, an index (INDEX) of the keys last used: one line per profile and
capability set, the key's parts as found then, with libseccomp's file (its path,
size, mtime and inode) in place of its version. A run that finds its line, every
part still the same, reads that key's program without loading libseccomp (~0.5 ms
of a fresh process here); the default profile's line is its parts themselves, so
a plain `minirun run` hashes nothing either. The index is trusted as the programs are.
"""

from __future__ import annotations

import os

from .seccomp_filter import ProfileError, SeccompFilter, kernel_version  # noqa: F401 - the public names
from .state import create_file


def build_filter(profile, caps=(), *, kernel: tuple[int, int] | None = None) -> SeccompFilter:
    """``profile`` (a dict in Docker, containers-common or OCI shape, or "default") -> a loadable filter.

    ``caps``: the capabilities COMMAND keeps (``CAP_SYS_ADMIN`` or ``SYS_ADMIN``),
    for Docker's includes/excludes; ``kernel``: (major, minor) for minKernel.
    Raises ProfileError, with the part of the profile at fault.
    """
    from .seccomp_build import build

    return build(profile, caps, kernel)


def libseccomp_version() -> str:
    from ._seccomp import lib

    v = lib.seccomp_version()
    return f"{v.major}.{v.minor}.{v.micro}"


def _cache_dir() -> str:
    if os.geteuid() == 0:
        return "/var/cache/minirun/seccomp"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "minirun", "seccomp")


def _source_id(name: str) -> str:
    """A module's identity for the key: its size, mtime and inode (cheaper than hashing it)."""
    st = os.stat(os.path.join(os.path.dirname(__file__), name))
    return f"{name}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


def _compiler_id() -> str:
    """The compiler's identity for the key: the profile's reading and the code generator."""
    return _source_id("seccomp_build.py") + "\t" + _source_id("seccomp_bpf.py")


def _sha256(data: bytes) -> str:
    try:  # the builtin module: hashlib's OpenSSL import alone costs the run path ~2 ms
        from _sha256 import sha256
    except ImportError:
        try:
            from _sha2 import sha256
        except ImportError:
            from hashlib import sha256
    return sha256(data).hexdigest()


def _caps_text(caps) -> str:
    return ",".join(sorted(c.upper() if c.upper().startswith("CAP_") else "CAP_" + c.upper() for c in caps))


def _cache_key(profile, caps, kernel) -> str:
    if profile == "default":  # its source stands for it: no import and no JSON dump on the run path
        text = _source_id("seccomp_default.py")
    else:
        from .jsonlite import dumps  # json.dumps' very text (the key stays), without json's import

        text = dumps(profile, sort_keys=True, separators=(",", ":"))
    material = "\n".join((text, _caps_text(caps), "%d.%d" % kernel, libseccomp_version(),
                          _compiler_id()))
    return _sha256(material.encode())


INDEX = "keys.index"
_INDEX_LINES = 16  # profiles and capability sets remembered; the oldest line goes first


def _file_id(path: str) -> str:
    st = os.stat(path)
    return f"{path}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


def _index_parts(profile, caps, kernel) -> str:
    """What the key is made of but libseccomp: the start of the profile's index line.
    The default profile's as they are (no hashing); another's (its JSON) digested."""
    if profile == "default":
        return "\t".join((_caps_text(caps), "%d.%d" % kernel, _source_id("seccomp_default.py"),
                          _compiler_id()))
    from .jsonlite import dumps

    material = "\n".join((dumps(profile, sort_keys=True, separators=(",", ":")), _caps_text(caps),
                          "%d.%d" % kernel, _compiler_id()))
    return "profile " + _sha256(material.encode())


def _indexed_key(directory: str, parts: str) -> str | None:
    """The key for ``parts`` from the index, if libseccomp's file is still the one it was."""
    try:
        with open(os.path.join(directory, INDEX), "rb") as f:
            lines = f.read().decode().splitlines()
        for line in lines:
            head, _, rest = line.rpartition("\t")  # rest: the key
            found, _, library = head.rpartition("\t")
            if found == parts and library and _file_id(library.rsplit(":", 3)[0]) == library:
                return rest if len(rest) == 64 and not rest.strip("0123456789abcdef") else None  # a name, no path
    except (OSError, ValueError):
        pass
    return None


def _loaded_libseccomp() -> str | None:
    """The file of the libseccomp this process has loaded (minirun._seccomp links it)."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.rstrip("\n").partition("/")[2]
                if "/libseccomp.so" in "/" + path:
                    return _file_id("/" + path)
    except OSError:
        pass
    return None


def _index_key(directory: str, parts: str, key: str) -> None:
    """Best effort, as _store: remember ``key`` for ``parts`` (the program is in the cache already)."""
    library = _loaded_libseccomp()
    if library is None:
        return
    path = os.path.join(directory, INDEX)
    try:
        with open(path, "rb") as f:
            old = [line for line in f.read().decode().splitlines() if not line.startswith(parts + "\t")]
    except (OSError, ValueError):
        old = []
    text = "\n".join(old[-(_INDEX_LINES - 1):] + [f"{parts}\t{library}\t{key}"]) + "\n"
    try:
        tmp = f"{path}.{os.getpid()}.tmp"
        create_file(tmp, text.encode())
        os.rename(tmp, path)
    except OSError:
        pass


def _trusted_dir(path: str) -> bool:
    """Ours alone: a directory owned by us that nobody else can write (else a planted filter could disarm us)."""
    import stat

    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


_DEFAULT_FILTERS: dict[tuple, SeccompFilter] = {}  # caps -> Docker's filter for them, for the process's life


def filter_for(profile, caps=()) -> SeccompFilter:
    """build_filter(profile, caps), through a cache of exported programs (see the module docstring).

    The cache is only a shortcut: whatever goes wrong with it (unreadable home,
    read-only disk, a directory not ours) costs a build, never the run. Docker's
    profile is looked up once per process and capability set (a program running
    containers through the API): what its key is made of is this process's own
    code, libseccomp and kernel, which stay as they are while it runs.
    """
    if profile != "default":
        return _cached_filter(profile, caps)
    key = tuple(caps)
    found = _DEFAULT_FILTERS.get(key)
    if found is None:
        found = _DEFAULT_FILTERS[key] = _cached_filter(profile, caps)
    return found


def _cached_filter(profile, caps) -> SeccompFilter:
    kernel = kernel_version()
    directory = _cache_dir()
    trusted = _trusted_dir(directory)
    try:
        parts = _index_parts(profile, caps, kernel)
        indexed = _indexed_key(directory, parts) if trusted else None
        key = indexed or _cache_key(profile, caps, kernel)
    except (TypeError, ValueError, OSError):  # not JSON-able (resolve() will say why), or sources unreadable
        return build_filter(profile, caps, kernel=kernel)
    path = os.path.join(directory, key)
    if trusted:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            fd = -1
        if fd >= 0:
            with os.fdopen(fd, "rb") as f:
                data = f.read()
            if len(data) >= 12 and (len(data) - 4) % 8 == 0:
                if not indexed:  # the key had to be made: remember it
                    _index_key(directory, parts, key)
                return SeccompFilter(data[4:], int.from_bytes(data[:4], "little"))
    result = build_filter(profile, caps, kernel=kernel)
    _store(directory, path, result)
    _index_key(directory, parts, key)
    return result


def _store(directory: str, path: str, result: SeccompFilter) -> None:
    """Best effort: a read-only or foreign cache only costs the next run a rebuild."""
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if not _trusted_dir(directory):
            return
        tmp = f"{path}.{os.getpid()}.tmp"
        create_file(tmp, result.flags.to_bytes(4, "little") + result.program)
        os.rename(tmp, path)
    except OSError:
        pass


def load_profile_file(path: str) -> dict:
    import json

    try:
        with open(path) as f:
            return json.load(f)
    except OSError as err:
        raise ProfileError(f"seccomp profile {path}: {err.strerror}") from None
    except ValueError as err:
        raise ProfileError(f"seccomp profile {path}: not valid JSON: {err}") from None


