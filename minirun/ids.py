"""Container ids: the one check of a name before it names a state directory, a cgroup, a hostname.

Two alphabets, one per front end's convention:
    minirun      docker's names: r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}", matched whole
    minirun-oci  runc's ids: letters, digits and ``_ + - .``, neither ``.`` nor ``..``
The rule is C (csrc/ocistore.c's mr_check_id), which minirun-oci's native verbs apply
too; this is its binding.
"""

from __future__ import annotations

from .errors import SpecError

OCI_ID_MAX = 1024


def _check(name: str, oci: bool):
    """None if ``name`` is a valid id, else the error (a StoreError, a SpecError)."""
    from .ociverbs import check_id_error

    if not isinstance(name, str):
        return SpecError(f"invalid container {'id' if oci else 'name'} {name!r}")
    return check_id_error(name, oci)


def valid_id(name: str, oci: bool = False) -> bool:
    return _check(name, oci) is None


def check_id(name: str, oci: bool = False) -> str:
    """``name`` if it is a valid id (``oci``: by runc's rule), else SpecError."""
    err = _check(name, oci)
    if err is not None:
        raise err
    return name
