"""minirun.record: the part of @dataclass minirun uses, without importing dataclasses."""

from __future__ import annotations

import pytest

from minirun.record import Factory, Record


class Mount(Record):
    destination: str
    type: str = "bind"
    options: list[str] = Factory(list)


class Point(Record, frozen=True):
    x: int
    y: int = 0


class Named(Mount):
    name: str = ""


def test_keyword_and_positional_construction_with_defaults():
    assert Mount("/a") == Mount(destination="/a") == Mount("/a", "bind", [])
    assert Mount("/a", options=["ro"]).options == ["ro"]
    assert Named("/a", name="n").to_dict() == {"destination": "/a", "type": "bind", "options": [], "name": "n"}
    assert repr(Point(1)) == "Point(x=1, y=0)"


def test_a_factory_default_is_fresh_for_each_record():
    first, second = Mount("/a"), Mount("/b")
    first.options.append("ro")
    assert second.options == [] and Mount("/c").options == []


@pytest.mark.parametrize("make, message", [
    (lambda: Mount(), "Mount() missing argument 'destination'"),
    (lambda: Mount("/a", "bind", [], "extra"), "Mount() takes at most 3 positional arguments"),
    (lambda: Mount("/a", destination="/b"), "Mount() got an unexpected or repeated argument 'destination'"),
    (lambda: Mount(destination="/a", size=1), "Mount() got an unexpected or repeated argument 'size'"),
])
def test_bad_arguments_are_refused_as_before(make, message):
    with pytest.raises(TypeError) as err:
        make()
    assert str(err.value) == message


def test_frozen_records_are_immutable_and_hashable():
    point = Point(1, 2)
    with pytest.raises(AttributeError, match="frozen"):
        point.x = 3
    assert hash(point) == hash(Point(1, 2)) and point != Point(1, 3)
    mount = Mount("/a")
    mount.type = "tmpfs"
    assert mount.type == "tmpfs"
    with pytest.raises(TypeError, match="unhashable"):
        hash(mount)
