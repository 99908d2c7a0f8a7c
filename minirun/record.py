"""Plain data classes for the `run` path, without the dataclasses module.

``dataclasses`` imports ``inspect`` (and with it ``ast``, ``dis``, ``tokenize``):
~6 ms at every start of minirun, as much as starting a whole container takes.
``Record`` gives the part of @dataclass minirun uses: fields declared as
annotated class attributes (inherited ones first), keyword or positional
construction with defaults, ``Factory(list)`` for a fresh mutable default,
``==``, ``repr``, ``to_dict()``, and ``frozen=True`` for immutable, hashable
records.

    class Mount(Record):
        destination: str
        type: str = "bind"
        options: list[str] = Factory(list)
"""

from __future__ import annotations


class Factory:
    """A default made fresh for each record, e.g. ``Factory(list)``."""

    __slots__ = ("make",)

    def __init__(self, make):
        self.make = make


class Record:
    _fields: tuple[str, ...] = ()
    _defaults: dict = {}
    _frozen = False

    def __init_subclass__(cls, frozen: bool = False, **kwargs):
        super().__init_subclass__(**kwargs)
        fields: list[str] = []
        defaults: dict = {}
        for klass in reversed(cls.__mro__):
            for name in vars(klass).get("__annotations__", {}):
                if name.startswith("_"):
                    continue
                if name not in fields:
                    fields.append(name)
                if name in vars(klass):
                    defaults[name] = vars(klass)[name]
        cls._fields, cls._defaults = tuple(fields), defaults
        cls._frozen = frozen or cls._frozen

    def __init__(self, *args, **kwargs):
        name = type(self).__name__
        if len(args) > len(self._fields):
            raise TypeError(f"{name}() takes at most {len(self._fields)} positional arguments")
        values = dict(zip(self._fields, args))
        for key, value in kwargs.items():
            if key not in self._fields or key in values:
                raise TypeError(f"{name}() got an unexpected or repeated argument {key!r}")
            values[key] = value
        for field in self._fields:
            if field in values:
                value = values[field]
            elif field in self._defaults:
                value = self._defaults[field]
                if isinstance(value, Factory):
                    value = value.make()
            else:
                raise TypeError(f"{name}() missing argument {field!r}")
            object.__setattr__(self, field, value)

    def __setattr__(self, key, value):
        if self._frozen:
            raise AttributeError(f"{type(self).__name__} is frozen: cannot set {key!r}")
        object.__setattr__(self, key, value)

    def _values(self) -> tuple:
        return tuple(getattr(self, f) for f in self._fields)

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self):
        if not self._frozen:
            raise TypeError(f"unhashable type: {type(self).__name__!r} (not frozen)")
        return hash(self._values())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{f}={getattr(self, f)!r}' for f in self._fields)})"

    def to_dict(self) -> dict:
        """The record as plain dicts, lists and values (what JSON needs)."""
        return {f: _plain(getattr(self, f)) for f in self._fields}


def _plain(value):
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
