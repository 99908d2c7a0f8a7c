"""The shape of a driver's setter table, and the one loop that applies one.

Each driver (v1.py, v2.py) declares SETTERS: ``(Limits field, controller, setter)``
entries in the order they are written. A setter takes ``(cgroup dir, limits, notes)``;
most are a ``file(name, format)``: one file, one value formatted from the limits.
The few that are more (an order the kernel imposes, a file chosen by what the kernel
has) are functions of the same shape. Controllers go by their v1 names everywhere.
"""

from __future__ import annotations

import os

from . import fs


def file(name: str, format):
    """A setter writing ``format(limits)`` to the cgroup file ``name``."""

    def setter(path: str, limits, notes: list[str]) -> None:
        fs.write(os.path.join(path, name), format(limits))

    setter.file = name  # type: ignore[attr-defined]  (for tests and readers of a table)
    return setter


def limit_or_max(value: int) -> int | str:
    """pids.max takes "max" for no limit; Limits say -1 (docker's spelling)."""
    return "max" if value == -1 else value


def is_set(value) -> bool:
    """Whether a Limits field asks for anything: None, False and () keep the kernel's default.
    (Not ``value in (...)``: 0 == False, and a swappiness of 0 is a setting.)"""
    return value is not None and value is not False and value != ()


def apply(setters, controller: str, path: str, limits, notes: list[str], skip: frozenset[str] = frozenset()) -> None:
    """Write, in table order, every field of ``controller`` that ``limits`` set (but ``skip``)."""
    for field, owner, setter in setters:
        if owner == controller and field not in skip and is_set(getattr(limits, field)):
            setter(path, limits, notes)
