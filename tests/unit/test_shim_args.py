"""minirun-shim's argument parsing (csrc/shim.c)."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from minirun.syscalls import SHIM_PATH

PID = (1 << 20) + 1


@pytest.mark.skipif(not os.access(SHIM_PATH, os.X_OK), reason="minirun-shim not built")
def test_shim_accepts_an_init_pid_above_2_pow_20(tmp_path):
    """kernel.pid_max goes up to 4194304 (systemd sets it so on 64-bit hosts): a pid above
    1 << 20 is an ordinary pid there. The shim must still reach its finish step; refusing
    it (exit 125) leaves the container to PDEATHSIG and nobody records its exit."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    theirs.close()  # the init "died" without a report
    marker = tmp_path / "finish-ran"
    out = subprocess.run([SHIM_PATH, str(ours.fileno()), str(PID), "-1", "-1", "-1", "--",
                          "/bin/sh", "-c", f'echo "$0" > {marker}'], pass_fds=(ours.fileno(),), timeout=10)
    ours.close()
    assert out.returncode == 0
    assert marker.exists()


@pytest.mark.skipif(not os.access(SHIM_PATH, os.X_OK), reason="minirun-shim not built")
@pytest.mark.parametrize("args", [["-l", "10"], ["-l", "10:0"], ["-l", "-1:3"], ["-o", "x"], ["-p", "3:host:80"],
                                  ["-p", "3:10.0.0.1:70000"], ["-q", "1"]])
def test_shim_refuses_bad_options(args):
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        out = subprocess.run([SHIM_PATH, str(ours.fileno()), "1", "-1", "-1", "-1", *args, "--", "/bin/true"],
                             pass_fds=(ours.fileno(),), capture_output=True, timeout=10)
    assert out.returncode == 125 and b"usage" in out.stderr


@pytest.mark.skipif(not os.access(SHIM_PATH, os.X_OK), reason="minirun-shim not built")
def test_shim_writes_the_output_pipe_to_a_rotated_log(tmp_path):
    """-o OUT_FD -l MAX_SIZE:MAX_FILES: the shim alone writes the log, rotating it at the bound."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    r, w = os.pipe()
    dir_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    shim = subprocess.Popen([SHIM_PATH, str(ours.fileno()), str(PID), str(dir_fd), "-1", "-1", "-o", str(r),
                             "-l", "100:3", "--", "/bin/true"], pass_fds=(ours.fileno(), r, dir_fd))
    os.close(r)
    os.close(dir_fd)
    ours.close()
    with os.fdopen(w, "wb") as out:
        out.write(b"".join(b"%04d\n" % i for i in range(200)))  # 1000 bytes
    theirs.close()  # the "init" is gone: the shim drains the pipe, finishes
    assert shim.wait(timeout=10) == 0
    sizes = {p.name: p.stat().st_size for p in tmp_path.iterdir()}
    assert sizes == {"log": 100, "log.1": 100, "log.2": 100}
    assert (tmp_path / "log").read_bytes().split()[-1] == b"0199"
