"""The published ports' relay (csrc/relay.c) on the host's loopback, without a container:
idle and slow clients cannot deny the others, and running out of fds closes the
connection idle the longest rather than refusing everyone new."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading

import pytest

pytest.importorskip("minirun._native")


@contextlib.contextmanager
def echo_server(reply_size: int = 0):
    """Echoes what each client sends; with reply_size, first sends that many bytes."""
    srv = socket.create_server(("127.0.0.1", 0), backlog=1024)
    stop = threading.Event()

    def serve(conn):
        with conn:
            try:
                if reply_size:
                    conn.sendall(b"z" * reply_size)
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass

    def accept():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        srv.close()


@contextlib.contextmanager
def relay_to(port: int):
    from minirun.syscalls import Relay

    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    relay = Relay()
    relay.add_port(listener.fileno(), "127.0.0.1", port)
    stop_r, stop_w = os.pipe()
    thread = threading.Thread(target=relay.serve, args=(stop_r,), daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        os.write(stop_w, b"x")
        thread.join()
        relay.close()
        listener.close()
        os.close(stop_r)
        os.close(stop_w)


def ping(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"ping")
        s.shutdown(socket.SHUT_WR)
        return s.recv(16)


def test_hundreds_of_idle_connections_leave_room_for_a_new_one():
    with echo_server() as target, relay_to(target) as port:
        idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(300)]
        try:
            assert ping(port) == b"ping"
        finally:
            for s in idle:
                s.close()


def test_a_client_that_never_reads_stalls_only_itself():
    with echo_server(reply_size=64 << 20) as target, relay_to(target) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as stuck:
            assert stuck.recv(1) == b"z"  # the flood has begun; we read no more
            for _ in range(3):
                with socket.create_connection(("127.0.0.1", port), timeout=10) as other:
                    got = 0
                    while got < 1 << 20:  # the others' floods flow meanwhile
                        got += len(other.recv(1 << 16))


_LIMITED = """
import os, resource, socket, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
from minirun.syscalls import Relay
listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
relay = Relay()
relay.add_port(listener.fileno(), "127.0.0.1", int(sys.argv[1]))
print(listener.getsockname()[1], flush=True)
relay.serve(0)  # until the test closes our stdin
"""


@contextlib.contextmanager
def limited_relay():
    """A relay to an echo server in a process limited to 64 fds; yields its port and a list
    the test fills with its sockets, all closed at the end."""
    with echo_server() as target:
        proc = subprocess.Popen([sys.executable, "-c", _LIMITED, str(target)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        sockets: list[socket.socket] = []
        try:
            yield int(proc.stdout.readline()), sockets
        finally:
            for s in sockets:
                s.close()
            proc.stdin.close()
            proc.wait(timeout=10)


def test_out_of_fds_the_longest_idle_connection_makes_room():
    """64 fds hold ~28 connections: the 100 idle ones before, and a new client still gets through."""
    with limited_relay() as (port, idle):
        idle += [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(100)]
        assert ping(port) == b"ping"


def _held_by_eviction_pressure(bystander_source: str) -> bool:
    """A client from ``bystander_source`` connects first and answers once; then 100 idle
    connections from 127.0.0.2 flood a relay with 64 fds (room for ~28 connections).
    True if the bystander's connection still relays afterwards."""
    with limited_relay() as (port, flood):
        with socket.create_connection(("127.0.0.1", port), timeout=10,
                                      source_address=(bystander_source, 0)) as bystander:
            bystander.sendall(b"1")
            assert bystander.recv(1) == b"1"
            flood += [socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.2", 0))
                      for _ in range(100)]
            assert ping(port) == b"ping"  # the relay took the whole flood in
            try:
                bystander.sendall(b"2")
                return bystander.recv(1) == b"2"
            except OSError:  # reset: the relay closed it
                return False


def test_one_address_opening_many_connections_cannot_evict_another_clients():
    """Eviction is per client address: the address holding the most connections loses its
    idle-longest one, so a flood from one address evicts its own connections, not an
    earlier client's from elsewhere (before: the idle-longest of all, the bystander)."""
    assert _held_by_eviction_pressure("127.0.0.1")


def test_positive_control_a_bystander_of_the_flooding_address_is_evicted():
    """The same flood really evicts: a connection from the flooding address itself, idle
    the longest among that address's, is the one closed."""
    assert not _held_by_eviction_pressure("127.0.0.2")
