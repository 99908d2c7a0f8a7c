"""Our QMP vocabulary on top of the QEMU project's ``qemu.qmp`` (the only importer of it).

``qemu.qmp`` is "the protocol, not the vocabulary": this module adds the few
commands and events minirun uses (``query-status``, ``quit``, the ``SHUTDOWN``
event) and turns its error tree (QMPError -> ConnectError/ExecuteError/...) into
minirun's (VMError) with ``raise ... from``.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from qemu.qmp import EventListener, QMPClient, QMPError

from .errors import VMError

# qemu.qmp logs a disconnect as an error when QEMU exits first, which is how every VM ends.
# Keep its records out of Python's last-resort stderr handler unless --debug configures logging.
logging.getLogger("qemu.qmp").addHandler(logging.NullHandler())
logging.getLogger("qemu.qmp").propagate = False


class Monitor:
    """One QMP connection to one QEMU, over the socket QEMU was given at launch."""

    def __init__(self, name: str):
        self.client = QMPClient(name)
        self.shutdown_events = EventListener(("SHUTDOWN",))
        self.client.register_listener(self.shutdown_events)
        self._listening = True

    async def connect(self, sock: socket.socket, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.client.connect(sock), timeout)
        except (QMPError, OSError, asyncio.TimeoutError) as err:
            raise VMError(f"QMP handshake with QEMU failed: {err or type(err).__name__}") from err

    def qemu_version(self) -> str:
        """From the QMP greeting (saves running ``qemu --version`` on every boot)."""
        greeting = self.client.greeting
        if greeting is None:
            return ""
        v = greeting.QMP.version.get("qemu", {})
        return f"{v.get('major')}.{v.get('minor')}.{v.get('micro')}" if isinstance(v, dict) else ""

    async def status(self) -> str:
        """QEMU's run state: ``running``, ``shutdown``, ``paused``, ... (query-status)."""
        try:
            reply = await self.client.execute("query-status")
        except QMPError as err:
            raise VMError(f"QMP query-status failed: {err}") from err
        return str(reply.get("status", "unknown")) if isinstance(reply, dict) else "unknown"

    async def wait_shutdown(self) -> dict:
        """Wait for the guest-initiated SHUTDOWN event; returns its data (``reason``, ``guest``)."""
        event = await self.shutdown_events.get()
        return dict(event.get("data", {}))

    def shutdown_seen(self) -> bool:
        return not self.shutdown_events.empty() or bool(self.shutdown_events.history)

    async def quit(self, timeout: float = 5.0) -> None:
        """Ask QEMU to exit.  QEMU may close the socket before replying: that counts as success."""
        try:
            await asyncio.wait_for(self.client.execute("quit"), timeout)
        except (QMPError, OSError, EOFError):
            pass

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.client.disconnect(), 5)
        except (QMPError, OSError, EOFError, asyncio.TimeoutError):
            pass
        if self._listening:
            self.client.remove_listener(self.shutdown_events)
            self._listening = False
