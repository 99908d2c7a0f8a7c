"""terminal: true with --console-socket, as podman (conmon) and containerd's shim use it: the
runtime sends the pty master over the socket (SCM_RIGHTS) and the engine owns it from then on.
The pty comes from the one place minirun makes terminals (csrc/console.c)."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess

from conftest import OCI, write_config


def _read_until(fd: int, needle: bytes, timeout: float = 20) -> bytes:
    data = b""
    while needle not in data:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other side is gone
            break
        if not chunk:
            break
        data += chunk
    return data


def _console_run(tmp_path, bundle, state_root, args, verb_args=()):
    path = bundle(args)
    config = json.load(open(os.path.join(path, "config.json")))
    config["process"]["terminal"] = True
    config["process"]["consoleSize"] = {"height": 25, "width": 81}
    write_config(path, config)
    sock_path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    proc = subprocess.Popen([OCI, "--root", state_root, "run", "--console-socket", sock_path, "--bundle", path,
                             *verb_args, "console"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server.settimeout(20)
    conn, _ = server.accept()
    msg, fds, _, _ = socket.recv_fds(conn, 1024, 1)
    conn.close()
    server.close()
    return proc, msg, fds


def test_console_socket_gets_the_pty_master(tmp_path, bundle, state_root):
    proc, msg, fds = _console_run(tmp_path, bundle, state_root,
                                  ["/bin/sh", "-c", "tty; stty size; echo TERM=$TERM; exit 3"])
    try:
        assert len(fds) == 1, "no fd came over the console socket"
        assert msg.rstrip(b"\0").decode() == "/dev/pts/0"  # what runc sends beside the fd
        out = _read_until(fds[0], b"TERM=")
        out += _read_until(fds[0], b"\n", timeout=2)
        text = out.decode(errors="replace").replace("\r", "")
        assert "/dev/pts/0" in text and "25 81" in text, text
    finally:
        for fd in fds:
            os.close(fd)
    assert proc.wait(timeout=30) == 3, proc.stderr.read().decode()


def test_terminal_without_a_console_socket_is_refused(bundle, oci):
    path = bundle(["/bin/true"])
    config = json.load(open(os.path.join(path, "config.json")))
    config["process"]["terminal"] = True
    write_config(path, config)
    out = oci("run", "--bundle", path, "noconsole")
    assert out.returncode != 0
    assert "--console-socket" in out.stderr and "Traceback" not in out.stderr
    assert any("--console-socket" in m for m in oci.log_errors())
    assert os.listdir(oci.root) == [] if os.path.isdir(oci.root) else True
