"""Published ports (-p HOSTPORT:CTRPORT): a userspace TCP proxy on the host's loopback.

Why a proxy rather than nftables DNAT: DNAT from 127.0.0.1 needs the host-wide
sysctl route_localnet=1 and firewall rules that outlive a crashed minirun; a
proxy changes nothing on the host, dies with its owner (the foreground minirun,
or a detached container's minirun-shim, which takes the listening sockets over
and relays in C: csrc/shim.c), and is what docker-proxy does for loopback too.
The cost is a copy through user space per byte.
"""

from __future__ import annotations

import os
import selectors
import socket
import threading

from .errors import SpecError

_CHUNK = 65536


class PortProxy:
    """Listens on 127.0.0.1:HOSTPORT for each published port, forwards to the container."""

    def __init__(self, ports: list[tuple[int, int]]):
        self.ports = ports
        self.listeners: list[tuple[socket.socket, int]] = []
        self._wake_r, self._wake_w = os.pipe()
        self._thread: threading.Thread | None = None
        try:
            for host_port, ctr_port in ports:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", host_port))
                except OSError as err:
                    sock.close()
                    raise SpecError(f"cannot publish port {host_port}: {err.strerror}") from None
                sock.listen(64)
                sock.setblocking(False)
                self.listeners.append((sock, ctr_port))
        except BaseException:
            self.close()
            raise

    def start(self, container_ip: str) -> None:
        self.container_ip = container_ip
        self._thread = threading.Thread(target=self._serve, args=(container_ip,), name="minirun-portproxy",
                                        daemon=True)
        self._thread.start()

    def hand_over(self) -> list[tuple[int, str, int]]:
        """Stop relaying here and give the listening sockets away, as (fd, container
        address, container port): a detached container's supervisor is about to exec
        minirun-shim, which relays from then on (csrc/shim.c). Connections accepted
        here are dropped; the backlog carries over. The fds stay open until the exec."""
        self._stop_thread()
        published = [(sock.detach(), self.container_ip, ctr_port) for sock, ctr_port in self.listeners]
        self.listeners = []
        return published

    def _stop_thread(self) -> None:
        if self._thread:
            os.write(self._wake_w, b"x")
            self._thread.join(5)
            self._thread = None
            os.read(self._wake_r, 1)

    def close(self) -> None:
        self._stop_thread()
        for sock, _ in self.listeners:
            sock.close()
        self.listeners = []
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1

    def _serve(self, container_ip: str) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        for sock, ctr_port in self.listeners:
            sel.register(sock, selectors.EVENT_READ, ("accept", ctr_port))
        peers: dict[socket.socket, socket.socket] = {}
        try:
            while True:
                for key, _ in sel.select():
                    kind, data = key.data
                    if kind == "wake":
                        return
                    if kind == "accept":
                        self._accept(key.fileobj, container_ip, data, sel, peers)
                    else:
                        self._pump(key.fileobj, sel, peers)
        finally:
            for s in list(peers):
                s.close()
            sel.close()

    @staticmethod
    def _accept(listener, container_ip, ctr_port, sel, peers) -> None:
        try:
            client, _ = listener.accept()
        except BlockingIOError:
            return
        try:
            upstream = socket.create_connection((container_ip, ctr_port), timeout=5)
        except OSError:
            client.close()
            return
        for s in (client, upstream):
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, ("pump", None))
        peers[client], peers[upstream] = upstream, client

    @staticmethod
    def _pump(src, sel, peers) -> None:
        """Relay what ``src`` sent to its peer. EOF is passed on as a shutdown of the
        peer's writing side, the other direction going on (a client that half-closes
        after its request still gets the answer); both go once both said EOF, or at
        the first error. csrc/shim.c relays the same way for a detached container."""
        dst = peers.get(src)
        try:
            data = src.recv(_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = None
        if data and dst is not None:
            try:
                dst.setblocking(True)  # simple back-pressure: a slow reader slows the writer
                dst.sendall(data)
                dst.setblocking(False)
                return
            except OSError:
                data = None
        if data == b"" and dst is not None:
            sel.unregister(src)  # nothing more to read from it
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            else:
                if _registered(sel, dst):
                    return  # the other direction is still open
        for s in (src, dst):
            if s is not None and s in peers:
                if _registered(sel, s):
                    sel.unregister(s)
                s.close()
                peers.pop(s, None)


def _registered(sel, sock) -> bool:
    try:
        sel.get_key(sock)
        return True
    except KeyError:
        return False
