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
    _field_set: frozenset[str] = frozenset()
    _plain_defaults: dict = {}  # the defaults but Factory ones, copied as they are
    _factories: dict = {}  # field -> Factory.make

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
        cls._field_set = frozenset(fields)
        cls._plain_defaults = {k: v for k, v in defaults.items() if not isinstance(v, Factory)}
        cls._factories = {k: v.make for k, v in defaults.items() if isinstance(v, Factory)}

    def __init__(self, *args, **kwargs):
        # A record is made per container several times over (spec, limits, mount plan, result):
        # one dict built and stored at once, not a setattr per field.
        fields = self._fields
        if args:
            if len(args) > len(fields):
                raise TypeError(f"{type(self).__name__}() takes at most {len(fields)} positional arguments")
            for key in fields[:len(args)]:
                if key in kwargs:
                    raise TypeError(f"{type(self).__name__}() got an unexpected or repeated argument {key!r}")
            kwargs.update(zip(fields, args))
        if not self._field_set.issuperset(kwargs):
            unknown = next(key for key in kwargs if key not in self._field_set)
            raise TypeError(f"{type(self).__name__}() got an unexpected or repeated argument {unknown!r}")
        values = dict(self._plain_defaults)
        values.update(kwargs)
        for field, make in self._factories.items():
            if field not in kwargs:
                values[field] = make()
        if len(values) != len(fields):
            missing = next(field for field in fields if field not in values)
            raise TypeError(f"{type(self).__name__}() missing argument {missing!r}")
        self.__dict__.update(values)

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
