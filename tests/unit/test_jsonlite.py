"""minirun.jsonlite: json's results and errors, without importing json on the start paths."""

from __future__ import annotations

import json
import random

import pytest

from minirun import jsonlite

SCALARS = [None, True, False, 0, -5, 2**70, 1.5, -0.0, 1e300, float("inf"), float("-inf"), "", "x",
           'a"b\\\n\u00e9\U0001f600\x00', 3.141592653589793]


def _value(rng: random.Random, depth: int = 0):
    r = rng.random()
    if depth > 3 or r < 0.5:
        return rng.choice(SCALARS)
    if r < 0.75:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if r < 0.8:
        return tuple(_value(rng, depth + 1) for _ in range(rng.randint(0, 3)))
    keys = ["a", "b", "\u00e9", "", "z\n"] + ([1, 2.5, True, None] if rng.random() < 0.2 else [])
    return {rng.choice(keys): _value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


@pytest.mark.parametrize("options", [{}, {"indent": 2}, {"indent": 0}, {"sort_keys": True, "separators": (",", ":")},
                                     {"indent": 4, "sort_keys": True}])
def test_dumps_writes_what_json_writes(options):
    rng = random.Random(7)
    for _ in range(3000):
        value = _value(rng)
        try:
            expected = json.dumps(value, **options)
        except TypeError:  # sort_keys over mixed keys: json's own error
            with pytest.raises(TypeError):
                jsonlite.dumps(value, **options)
            continue
        separators = options.get("separators") or ((", ", ": ") if options.get("indent") is None else (",", ": "))
        # _dumps: what dumps() runs where json is not imported (the start paths), unlike here
        assert jsonlite._dumps(value, options.get("indent"), separators, options.get("sort_keys", False)) == expected
        assert jsonlite.dumps(value, **options) == expected
        assert repr(jsonlite.loads(expected)) == repr(json.loads(expected))


def test_a_long_string_kept_quoted_is_never_another_ones():
    class Same(str):
        def __eq__(self, other):
            return True

        __hash__ = str.__hash__

    first, second = "ab" * 5000, "a\u00e9\n" * 2000
    for value in ({"s": first}, {"s": first}, {"s": second, "t": first}, {"s": Same("c" * 3000)}, {"s": second}):
        assert jsonlite._dumps(value, None, (", ", ": "), False) == json.dumps(value)


def test_other_types_go_to_json():
    import enum

    class Number(enum.IntEnum):
        ONE = 1

    value = {"n": Number.ONE, Number.ONE: [1]}
    assert jsonlite._dumps(value, None, (", ", ": "), False) == json.dumps(value)
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsonlite._dumps({"s": {1, 2}}, None, (", ", ": "), False)


@pytest.mark.parametrize("text", ["", " ", "{", "[1,]", "1 2", "nul", '{"a":1}x', "\ufeff{}", "[NaN, -Infinity]",
                                  ' \n {"a": [1, 2.5e3, -0, "\\u00e9"]}  \r\n', '"\\ud800"', '{"a": "\x01"}'])
def test_loads_reads_and_fails_as_json_does(text):
    def outcome(loads):
        try:
            return "ok", repr(loads(text))
        except ValueError as err:
            return "error", type(err).__name__, str(err)

    assert outcome(jsonlite.loads) == outcome(json.loads)
