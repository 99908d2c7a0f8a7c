"""The address allocator of bridge networking: pure file logic, in a temporary directory."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from minirun import network
from minirun.errors import HostError


@pytest.fixture(autouse=True)
def default_subnet(monkeypatch):
    """The default subnet, whatever this session's bridge uses (tests/isolation.py)."""
    monkeypatch.setattr(network, "SUBNET", "10.88.0.0/24")


def test_addresses_are_distinct_and_skip_the_gateway(tmp_path):
    got = [network.allocate(f"c{i}", str(tmp_path)) for i in range(5)]
    assert [g[0] for g in got] == [f"10.88.0.{i}" for i in range(2, 7)]
    assert all(g[1:] == (24, "10.88.0.1") for g in got)


def test_a_released_address_is_reused(tmp_path):
    network.allocate("a", str(tmp_path))
    network.allocate("b", str(tmp_path))
    with network._Allocations(str(tmp_path)) as book:
        book.pop("a")
    assert network.allocate("c", str(tmp_path))[0] == "10.88.0.2"
    assert network.stale_ids(str(tmp_path)) == {"b", "c"}


def test_a_full_subnet_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(network, "SUBNET", "10.99.0.0/29")  # .1 gateway, .2-.6 for containers
    for i in range(5):
        network.allocate(f"c{i}", str(tmp_path))
    with pytest.raises(HostError, match="no free address"):
        network.allocate("one-too-many", str(tmp_path))


def test_a_public_subnet_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(network, "SUBNET", "8.8.8.0/24")
    with pytest.raises(Exception, match="private"):
        network.allocate("c", str(tmp_path))


def _allocate_many(root: str, worker: int, queue) -> None:
    queue.put([network.allocate(f"w{worker}-{i}", root)[0] for i in range(10)])


def test_concurrent_allocations_never_collide(tmp_path):
    """The flock makes read-pick-write atomic across processes."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_allocate_many, args=(str(tmp_path), w, queue)) for w in range(8)]
    for w in workers:
        w.start()
    addresses = [a for _ in workers for a in queue.get(timeout=30)]
    for w in workers:
        w.join(10)
    assert len(addresses) == 80 and len(set(addresses)) == 80
    assert os.path.exists(tmp_path / "allocations.json")
