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
