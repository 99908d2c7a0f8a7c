"""A CRI client, as kubelet talks to containerd: gRPC stubs generated from api.proto at test
time, and the streaming server's exec/attach over WebSocket (k8s' `v4.channel.k8s.io`)."""

from __future__ import annotations

import base64
import importlib
import json
import os
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))


def generate_stubs(outdir: str):
    """(api_pb2, api_pb2_grpc) compiled from api.proto into ``outdir``."""
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{HERE}", f"--python_out={outdir}",
                    f"--grpc_python_out={outdir}", os.path.join(HERE, "api.proto")], check=True)
    sys.path.insert(0, outdir)
    try:
        return importlib.import_module("api_pb2"), importlib.import_module("api_pb2_grpc")
    finally:
        sys.path.remove(outdir)


def wait_for(what: str, check, timeout: float = 60):
    """check()'s first truthy value, polled; a clear failure after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Cri:
    def __init__(self, sock: str, pb, rpc):
        import grpc

        self.pb = pb
        self.channel = grpc.insecure_channel(f"unix://{sock}")
        self.runtime = rpc.RuntimeServiceStub(self.channel)
        self.images = rpc.ImageServiceStub(self.channel)

    def __getattr__(self, name: str):
        """RuntimeService's calls by name: ``cri.ContainerStatus(container_id=...)``."""
        method = getattr(self.runtime, name)
        request = getattr(self.pb, f"{name}Request")
        return lambda **fields: method(request(**fields), timeout=120)

    def close(self) -> None:
        self.channel.close()


class Stream:
    """What one exec or attach through the CRI streaming server produced."""

    def __init__(self):
        self.stdout, self.stderr, self.status = b"", b"", None

    @property
    def exit_code(self) -> int:
        """v4.channel.k8s.io ends with a metav1.Status on channel 3: Success, or the exit code."""
        if self.status is None:
            raise AssertionError("the stream ended without a status")
        if self.status.get("status") == "Success":
            return 0
        for cause in self.status.get("details", {}).get("causes", []):
            if cause.get("reason") == "ExitCode":
                return int(cause["message"])
        raise AssertionError(f"stream failed: {self.status}")


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _send(sock: socket.socket, channel: int, data: bytes) -> None:
    """One binary frame on ``channel``; a client's frames are masked (RFC 6455)."""
    payload = bytes([channel]) + data
    assert len(payload) < 126
    mask = os.urandom(4)
    sock.sendall(bytes([0x82, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def stream(url: str, script=(), until: bytes | None = None, timeout: float = 60) -> Stream:
    """Open a streaming URL (from Exec or Attach) as a WebSocket client and collect what comes
    back until the server closes. ``script``: (expected, reply) steps, each sending ``reply`` on
    stdin once stdout contains ``expected`` (b"": at once); ``until``: stop once stdout contains
    it, the steps done (an attach never ends by itself)."""
    parts = urlsplit(url)
    result = Stream()
    steps = list(script)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        sock.sendall((f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                      "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += _read_exact(sock, 1)
        assert head.split(b"\r\n", 1)[0].split()[1] == b"101", head.decode(errors="replace")
        while True:
            while steps and steps[0][0] in result.stdout:
                _send(sock, 0, steps.pop(0)[1])
            if not steps and until is not None and until in result.stdout:
                break
            try:
                first, second = _read_exact(sock, 2)
            except EOFError:
                break
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(_read_exact(sock, 2), "big")
            elif length == 127:
                length = int.from_bytes(_read_exact(sock, 8), "big")
            payload = _read_exact(sock, length)
            opcode = first & 0x0F
            if opcode == 8:  # close
                break
            if opcode not in (1, 2) or not payload:
                continue
            channel, data = payload[0], payload[1:]
            if channel == 1:
                result.stdout += data
            elif channel == 2:
                result.stderr += data
            elif channel == 3 and data:
                result.status = json.loads(data)
    return result
