"""The pure logic of minirun/tty.py and of `-it` parsing (no container, no root)."""

from __future__ import annotations

import os
import socket
import termios

import pytest

from minirun.errors import SpecError
from minirun.runopts import parse_fast
from minirun.tty import DetachFilter, parse_detach_keys, raw_mode, receive_master, relay, window_size


@pytest.mark.parametrize("text, keys", [
    ("ctrl-p,ctrl-q", b"\x10\x11"),
    ("ctrl-a,d", b"\x01d"),
    ("CTRL-X", b"\x18"),
    ("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_", bytes([0, 27, 28, 29, 30, 31])),
    ("a,b,c", b"abc"),
])
def test_detach_keys_in_dockers_syntax(text, keys):
    assert parse_detach_keys(text) == keys


@pytest.mark.parametrize("text", ["", "ctrl-", "ctrl-1", "ctrl-pq", "ab", "ctrl-p,,ctrl-q", "é"])
def test_bad_detach_keys_are_refused(text):
    with pytest.raises(SpecError, match="invalid detach keys"):
        parse_detach_keys(text)


def test_detach_filter_finds_the_sequence_across_reads():
    f = DetachFilter(b"\x10\x11")
    assert f.feed(b"ls\r\x10") == (b"ls\r", False)  # held back: may be the start
    assert f.feed(b"\x11rest") == (b"", True)


def test_detach_filter_passes_a_broken_sequence_on():
    f = DetachFilter(b"\x10\x11")
    assert f.feed(b"\x10x") == (b"\x10x", False)
    assert f.feed(b"\x10\x10\x11") == (b"\x10", True)
    assert DetachFilter(b"").feed(b"\x10\x11") == (b"\x10\x11", False)


def test_bundled_short_flags_stay_on_the_fast_path():
    values = parse_fast(["-it", "--rm", "ROOTFS", "sh"])
    assert (values["interactive"], values["tty"], values["rm"]) == (True, True, True)
    assert parse_fast(["-dit", "R", "sh"])["detach"] is True
    assert parse_fast(["-iw", "/tmp", "R", "sh"]) is None  # a value-taking option: click's job
    assert parse_fast(["R", "sh", "-it"])["command"] == ["sh", "-it"]


def test_raw_mode_is_restored_even_on_error():
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        with pytest.raises(RuntimeError), raw_mode(slave):
            assert not termios.tcgetattr(slave)[3] & termios.ICANON
            raise RuntimeError("boom")
        assert termios.tcgetattr(slave) == before
        assert window_size(slave) is not None and window_size(os.open(os.devnull, os.O_RDONLY)) is None
    finally:
        os.close(master)
        os.close(slave)


def test_relay_keeps_what_was_written_before_the_end():
    """A pty written and closed, then the end signalled: every byte still comes out."""
    master, slave = os.openpty()
    out_r, out_w = os.pipe()
    end_r, end_w = os.pipe()
    data = b"x" * 3000 + b"last-words"
    os.write(slave, data)
    os.close(slave)
    os.write(end_w, b"!")
    relay(master, end_r, stdin_fd=None, stdout_fd=out_w)
    os.close(out_w)
    got = b""
    while chunk := os.read(out_r, 65536):
        got += chunk
    assert got.replace(b"\r", b"") == data
    for fd in (master, out_r, end_r, end_w):
        os.close(fd)


def test_receive_master_takes_the_fd_and_the_name():
    a, b = socket.socketpair()
    r, w = os.pipe()
    socket.send_fds(a, [b"/dev/pts/7"], [w])
    fd, name = receive_master(b)
    assert name == "/dev/pts/7" and os.path.sameopenfile(fd, w)
    for x in (fd, r, w):
        os.close(x)
    a.close()
    b.close()


def test_python_signal_handlers_run_while_the_c_relay_waits():
    """The relay is C (csrc/attach.c) and holds no GIL: a resize or a signal minirun passes
    on to the container must still reach its Python handler while it waits, not only when
    the container's output next wakes it. Here the handler is what ends the relay."""
    import subprocess
    import sys

    script = """if True:
        import os, signal
        from minirun.tty import relay
        master, slave = os.openpty()
        end_r, end_w = os.pipe()
        out_r, out_w = os.pipe()
        signal.signal(signal.SIGUSR1, lambda *_: os.write(end_w, b"!"))
        if os.fork() == 0:  # once the relay has passed output on, it waits in C: signal it then
            os.write(slave, b"x")
            os.read(out_r, 1)
            os.kill(os.getppid(), signal.SIGUSR1)
            os._exit(0)
        relay(master, end_r, stdin_fd=None, stdout_fd=out_w)
        print("ended")
    """
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=10)
    assert (out.returncode, out.stdout) == (0, "ended\n"), out.stderr


def test_the_attach_protocol_between_client_and_shim(tmp_path):
    """Both ends in C (csrc/attach.c): the client's keystrokes and window size reach the pty
    minirun-shim holds, the pty's output reaches the client and the log, and the detach
    keys end the client, not the container."""
    import fcntl
    import struct
    import subprocess
    import threading

    from minirun.syscalls import SHIM_PATH, attach_client, attach_send_size

    master, slave = os.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~termios.ECHO  # what is typed is not written back
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(str(tmp_path / "attach"))
    listener.listen(8)
    dir_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    shim = subprocess.Popen([SHIM_PATH, str(ours.fileno()), str((1 << 20) + 1), str(dir_fd), str(master),
                             str(listener.fileno()), "--", "/bin/true"],
                            pass_fds=(ours.fileno(), dir_fd, master, listener.fileno()))
    for fd in (ours.fileno(), dir_fd, master, listener.fileno()):
        os.close(fd)
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    client = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    detached = []
    try:
        client.connect(str(tmp_path / "attach"))
        attach_send_size(client.fileno(), (33, 90))
        thread = threading.Thread(target=lambda: detached.append(attach_client(client.fileno(), b"\x10\x11", in_r,
                                                                               out_w)))
        thread.start()
        os.write(in_w, b"hi\n\x10")  # the first detach key is held back
        assert os.read(slave, 100) == b"hi\n"
        assert struct.unpack("HHHH", fcntl.ioctl(slave, termios.TIOCGWINSZ, b"\0" * 8))[:2] == (33, 90)
        os.write(slave, b"out")
        assert os.read(out_r, 100) == b"out"
        os.write(in_w, b"\x11")
        thread.join(10)
        assert detached == [True]
    finally:
        client.close()
        os.close(slave)
        theirs.close()  # the "init" is gone: the shim finishes
        for fd in (in_r, in_w, out_r, out_w):
            os.close(fd)
    assert shim.wait(timeout=10) == 0
    assert (tmp_path / "log").read_bytes() == b"out"
