"""Published ports (-p [HOSTIP:]HOSTPORT:CTRPORT): a userspace TCP relay on the host.

Why a relay rather than nftables DNAT: DNAT from 127.0.0.1 needs the host-wide
sysctl route_localnet=1 and firewall rules that outlive a crashed minirun; a
relay changes nothing on the host, dies with its owner, and is what docker-proxy
does for loopback too. The cost is a copy through user space per byte.

The relay itself is C (csrc/relay.c), one implementation for both owners: a
foreground run serves it from a thread here (the call releases the GIL), a
detached container's minirun-shim takes the listening sockets over and serves
it in its own poll loop. Non-blocking, with no fixed connection table: a slow or
idle client never holds up another (see relay.c).
"""

from __future__ import annotations

import os
import socket
import threading

from .errors import SpecError


class PortProxy:
    """Listens on HOSTIP:HOSTPORT for each published port, forwards to the container."""

    def __init__(self, ports: list[tuple[str, int, int]]):
        self.ports = ports
        self.listeners: list[tuple[socket.socket, int]] = []
        self._stop_r, self._stop_w = os.pipe()
        self._relay = None
        self._thread: threading.Thread | None = None
        try:
            for address, host_port, ctr_port in ports:
                sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((address, host_port))
                except OSError as err:
                    sock.close()
                    shown = f"[{address}]" if ":" in address else address
                    raise SpecError(f"cannot publish port {host_port} on {shown}: {err.strerror}") from None
                sock.listen(4096)
                self.listeners.append((sock, ctr_port))
        except BaseException:
            self.close()
            raise

    def start(self, container_ip: str) -> None:
        """Relay every listener's connections to ``container_ip`` from a thread of ours."""
        from .syscalls import Relay

        self.container_ip = container_ip
        self._relay = Relay()
        for sock, ctr_port in self.listeners:
            self._relay.add_port(sock.fileno(), container_ip, ctr_port)
        self._thread = threading.Thread(target=self._relay.serve, args=(self._stop_r,), name="minirun-portproxy",
                                        daemon=True)
        self._thread.start()

    def hand_over(self) -> list[tuple[int, str, int]]:
        """Stop relaying here and give the listening sockets away, as (fd, container
        address, container port): a detached container's supervisor is about to exec
        minirun-shim, which relays from then on. Connections accepted here are dropped;
        the backlog carries over. The fds stay open until the exec."""
        self._stop()
        published = [(sock.detach(), self.container_ip, ctr_port) for sock, ctr_port in self.listeners]
        self.listeners = []
        return published

    def _stop(self) -> None:
        if self._thread:
            os.write(self._stop_w, b"x")
            self._thread.join()
            self._thread = None
            os.read(self._stop_r, 1)
        if self._relay is not None:
            self._relay.close()  # closes the connections; the listeners are ours
            self._relay = None

    def close(self) -> None:
        self._stop()
        for sock, _ in self.listeners:
            sock.close()
        self.listeners = []
        for fd in (self._stop_r, self._stop_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._stop_r = self._stop_w = -1
