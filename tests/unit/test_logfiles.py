"""Reading a rotated log back (minirun/logfiles.py) and docker's --log-opt."""

from __future__ import annotations

import io
import threading

import pytest

from minirun import logfiles
from minirun.errors import SpecError


def test_log_opts_follow_docker_and_default_to_a_bound():
    assert logfiles.parse_log_opts([]) == (10 << 20, 3)
    assert logfiles.parse_log_opts(["max-size=4k", "max-file=5"]) == (4096, 5)
    assert logfiles.parse_log_opts(["max-size=-1"]) == (0, 3)


@pytest.mark.parametrize("opt", ["max-size=0", "max-size=ten", "max-file=0", "max-file=1001", "mode=non-blocking",
                                 "max-size"])
def test_bad_log_opts_are_refused(opt):
    with pytest.raises(SpecError):
        logfiles.parse_log_opts([opt])


def test_read_goes_oldest_first(tmp_path):
    for name, text in (("log.2", b"a"), ("log.1", b"b"), ("log", b"c")):
        (tmp_path / name).write_bytes(text)
    out = io.BytesIO()
    logfiles.read(str(tmp_path), out)
    assert out.getvalue() == b"abc"


def test_follow_crosses_a_rotation(tmp_path):
    """A rotation renames the followed file to log.1 and starts a new log: what was
    written to both is followed, in order."""
    (tmp_path / "log").write_bytes(b"one\n")
    done = threading.Event()
    out = io.BytesIO()

    def writer():
        while b"one" not in out.getvalue():
            pass
        (tmp_path / "log").rename(tmp_path / "log.1")
        (tmp_path / "log").write_bytes(b"two\n")
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    logfiles.follow(str(tmp_path), lambda: not done.is_set() or b"two" not in out.getvalue(), out, poll_s=0.001)
    t.join()
    assert out.getvalue() == b"one\ntwo\n"


def test_follow_waits_for_a_log_the_shim_has_not_made_yet(tmp_path):
    """A detached container's start in flight: its log comes once COMMAND runs."""
    out = io.BytesIO()
    looks = []

    def alive() -> bool:
        looks.append(1)
        if len(looks) == 2:
            (tmp_path / "log").write_bytes(b"first\n")  # the shim, once COMMAND runs
        return len(looks) < 4

    logfiles.follow(str(tmp_path), alive, out, poll_s=0.001)
    assert out.getvalue() == b"first\n"
