"""Container ids: the one check of a name before it names a state directory, a cgroup, a hostname.

Two alphabets, one per front end's convention:
    minirun      docker's names: r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}", matched whole
    minirun-oci  runc's ids: letters, digits and ``_ + - .``, neither ``.`` nor ``..``
Checked without re: re imports enum, ~5 ms at every start.
"""

from __future__ import annotations

from .errors import SpecError

_ID_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ID_CHARS = _ID_FIRST | frozenset("_.-")
_OCI_ID_CHARS = _ID_FIRST | frozenset("_+-.")
OCI_ID_MAX = 1024


def valid_id(name: str, oci: bool = False) -> bool:
    if not isinstance(name, str):
        return False
    if oci:
        return 0 < len(name) <= OCI_ID_MAX and name not in (".", "..") and all(c in _OCI_ID_CHARS for c in name)
    return 0 < len(name) <= 64 and name[0] in _ID_FIRST and all(c in _ID_CHARS for c in name)


def check_id(name: str, oci: bool = False) -> str:
    """``name`` if it is a valid id (``oci``: by runc's rule), else SpecError."""
    if valid_id(name, oci):
        return name
    if oci:
        raise SpecError(f"invalid container id {name!r}: use letters, digits, '_', '+', '-', '.' "
                        "(no '/', not '.' or '..')")
    raise SpecError(f"invalid container name {name!r}: use letters, digits, '_', '.', '-' (at most 64)")
