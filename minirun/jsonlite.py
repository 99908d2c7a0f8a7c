"""JSON for the start paths, without importing the json package.

``json`` imports ``re``, and ``re`` imports ``enum``, ``functools`` and
``collections``: ~7 ms at every interpreter start on this project's host, as much
as the container itself takes to run /bin/true. `minirun run` writes state.json,
and `minirun-oci` reads config.json and state.json at each of the four or five
verbs an engine calls per container.

``loads`` is json's own C scanner (``_json.make_scanner``, what ``json.loads``
runs in CPython), given the settings it reads from a ``JSONDecoder``. ``dumps``
writes what minirun's files hold (dict, list, tuple, str, int, float, bool, None)
exactly as ``json.dumps`` does with the same ``indent``, ``separators`` and
``sort_keys``: without ``indent``, through json's own C encoder (``_json.make_encoder``,
what ``json.dumps`` runs), given a string quoter that keeps its last long result
(_quote_kept); with one, as ``json.dumps`` itself in a process that has imported json
already, such as a program using the API. Anything else, and every error, goes to
the json package, so results and messages (``JSONDecodeError``, "not JSON
serializable") are json's.
"""

from __future__ import annotations

import sys

try:
    from _json import encode_basestring_ascii as _quote, make_encoder as _make_encoder, make_scanner as _make_scanner
except ImportError:  # not CPython: the json package does it all
    _quote = _make_encoder = _make_scanner = None

_WS = " \t\n\r"  # json.decoder.WHITESPACE
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _Decoder:
    """The attributes of a default json.JSONDecoder that the C scanner reads."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


_scan = _make_scanner(_Decoder()) if _make_scanner else None


def loads(text: str):
    """``json.loads(text)`` for a str."""
    if _scan is not None and isinstance(text, str):
        start = len(text) - len(text.lstrip(_WS))
        try:
            value, end = _scan(text, start)
        except Exception:  # noqa: BLE001 - json.loads below raises its own error for it
            pass
        else:
            if not text[end:].strip(_WS):
                return value
    import json

    return json.loads(text)


def load(f):
    return loads(f.read())


class _Unsupported(Exception):
    pass


def dumps(value, *, indent: int | None = None, separators: tuple[str, str] | None = None,
          sort_keys: bool = False) -> str:
    """``json.dumps(value, indent=..., separators=..., sort_keys=...)``."""
    if separators is None:
        separators = (", ", ": ") if indent is None else (",", ": ")
    json = sys.modules.get("json")
    if json is not None and indent is not None:  # imported already (a program using the API): faster than _encode
        return json.dumps(value, indent=indent, separators=separators, sort_keys=sort_keys)
    return _dumps(value, indent, separators, sort_keys)


def _unsupported(value):
    raise _Unsupported


_LONG = 1024  # characters: a shorter string is quoted for less than keeping it costs
_last_long: tuple[str, str] = ("", '""')


def _quote_kept(text: str) -> str:
    """_quote(text), keeping the result for the last long string: state.json holds the
    container's seccomp filter as hex (~8 KB for Docker's profile), the same for every
    container of a process, whose escaping cost ~13 us at each write. A str compared by value cannot
    go stale (a subclass, whose == may be its own, is never kept); a short one is quoted
    as it comes (one call more: ~0.1 us)."""
    global _last_long
    if len(text) < _LONG or type(text) is not str:
        return _quote(text)
    if text != _last_long[0]:
        _last_long = (text, _quote(text))
    return _last_long[1]


def _dumps(value, indent: int | None, separators: tuple[str, str], sort_keys: bool) -> str:
    if _make_encoder is not None and indent is None:  # json.dumps' own C encoder, as json calls it
        try:
            return "".join(_make_encoder({}, _unsupported, _quote_kept, None, separators[1], separators[0], sort_keys,
                                         False, True)(value, 0))
        except Exception:  # noqa: BLE001 - json.dumps below raises its own error for it
            pass
    elif _quote is not None:
        out: list[str] = []
        try:
            _encode(value, out, indent, 0, separators[0], separators[1], sort_keys)
        except (_Unsupported, RecursionError):
            pass
        else:
            return "".join(out)
    import json

    return json.dumps(value, indent=indent, separators=separators, sort_keys=sort_keys)


def dump(value, f, **kw) -> None:
    f.write(dumps(value, **kw))


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _scalar(value) -> str | None:
    kind = type(value)
    if kind is str:
        return _quote(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        return _float(value)
    return None


def _key(key) -> str:
    kind = type(key)
    if kind is str:
        return key
    if kind is float:
        return _float(key)
    if key is True or key is False or key is None or kind is int:
        return _scalar(key)
    raise _Unsupported


def _encode(value, out: list, indent, level: int, item_sep: str, key_sep: str, sort_keys: bool) -> None:
    text = _scalar(value)
    if text is not None:
        out.append(text)
        return
    kind = type(value)
    if kind is dict:
        items = [(_key(k), v) for k, v in value.items()]
        if sort_keys:
            if any(type(k) is not str for k in value):
                raise _Unsupported  # json's own rules (and errors) for sorting mixed keys
            items.sort(key=lambda kv: kv[0])
        opening, closing = "{", "}"
    elif kind is list or kind is tuple:
        items = [(None, v) for v in value]
        opening, closing = "[", "]"
    else:
        raise _Unsupported
    if not items:
        out.append(opening + closing)
        return
    if indent is not None:
        inner = "\n" + " " * (indent * (level + 1))
        out.append(opening + inner)
        sep = item_sep + inner
    else:
        out.append(opening)
        sep = item_sep
    for i, (k, v) in enumerate(items):
        if i:
            out.append(sep)
        if k is not None:
            out.append(_quote(k) + key_sep)
        _encode(v, out, indent, level + 1, item_sep, key_sep, sort_keys)
    if indent is not None:
        out.append("\n" + " " * (indent * level))
    out.append(closing)
