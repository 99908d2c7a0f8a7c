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


def _exited_report(wait_status: int) -> bytes:
    """The init's last report (struct mr_report, kind MR_REPORT_EXITED) as the shim reads it."""
    from minirun._native import ffi
    from minirun.syscalls import EXITED

    rep = ffi.new("struct mr_report *")
    rep.kind, rep.status = EXITED, wait_status
    return bytes(ffi.buffer(rep))


@pytest.mark.skipif(not os.access(SHIM_PATH, os.X_OK), reason="minirun-shim not built")
def test_a_finish_step_that_cannot_be_execd_leaves_the_status_in_the_state(tmp_path):
    """The shim's stderr is /dev/null: had it only said so there, COMMAND's exit status would
    be lost and gc would record 137, "supervisor died". It leaves its own exit record in the
    state directory, which gc and `ps` read (minirun/cleanup.py)."""
    from minirun import cleanup
    from minirun.syscalls import SHIM_EXIT_RECORD

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    theirs.send(_exited_report(3 << 8))  # COMMAND exited 3
    theirs.close()
    dir_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    out = subprocess.run([SHIM_PATH, str(ours.fileno()), str(PID), "-1", "-1", "-1", "-s", str(dir_fd), "--",
                          str(tmp_path / "no-such-interpreter")], pass_fds=(ours.fileno(), dir_fd),
                         capture_output=True, timeout=10)
    ours.close()
    os.close(dir_fd)
    assert out.returncode == 125
    assert (tmp_path / SHIM_EXIT_RECORD).read_text() == \
        "768\nminirun-shim: exec of the finish step: No such file or directory\n"
    assert cleanup.shim_exit_record(str(tmp_path)) == dict(
        exit_code=3, signal=None, error="minirun-shim: exec of the finish step: No such file or directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == [SHIM_EXIT_RECORD]  # no temporary file left


@pytest.mark.skipif(not os.access(SHIM_PATH, os.X_OK), reason="minirun-shim not built")
def test_the_exit_record_is_written_before_the_finish_step_runs(tmp_path):
    """A finish step that starts but dies half-way still finds COMMAND's status recorded."""
    from minirun import cleanup
    from minirun.syscalls import SHIM_EXIT_RECORD

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    theirs.send(_exited_report(9))  # killed by SIGKILL
    theirs.close()
    dir_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    out = subprocess.run([SHIM_PATH, str(ours.fileno()), str(PID), "-1", "-1", "-1", "-s", str(dir_fd), "--",
                          "/bin/sh", "-c", f'cat {tmp_path / SHIM_EXIT_RECORD}; echo "$0"'],
                         pass_fds=(ours.fileno(), dir_fd), capture_output=True, text=True, timeout=10)
    ours.close()
    os.close(dir_fd)
    assert (out.returncode, out.stdout) == (0, "9\n9\n")
    assert cleanup.shim_exit_record(str(tmp_path)) == dict(
        exit_code=137, signal=9, error="the cleanup after its exit did not finish")


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


@pytest.mark.skipif(not os.access(SHIM_PATH, os.X_OK), reason="minirun-shim not built")
def test_attach_clients_beyond_the_fd_limit_do_not_make_the_shim_spin():
    """Out of fds (the published ports' relay may hold them all), accept fails with EMFILE and
    the client stays in the backlog: the listener stays readable, and a poll loop that only
    retries spins at 100% CPU. The shim accepts it into a spare fd and closes it instead."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind("\0minirun-test-attach-%d" % os.getpid())
    listener.listen(8)
    # The shim gets fds 0-7 (poll takes no more fds than the limit): the report socket as 3,
    # the listener as 4, /dev/null as 5; its signalfd and one more of its own leave no room
    # for a second client.
    shim = subprocess.Popen(["/bin/bash", "-c", f'exec 3<&{ours.fileno()} 4<&{listener.fileno()} 5</dev/null; '
                             f'exec {ours.fileno()}<&- {listener.fileno()}<&-; ulimit -n 8; exec "$@"', "sh",
                             SHIM_PATH, "3", str(PID), "-1", "-1", "4", "--", "/bin/true"],
                            pass_fds=(ours.fileno(), listener.fileno()))
    ours.close()
    clients = []
    try:
        for _ in range(2):
            clients.append(socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET))
            clients[-1].settimeout(10)
            clients[-1].connect(listener.getsockname())
        listener.close()
        assert clients[-1].recv(16) == b""  # refused: accepted and closed, not left in the backlog
        before = _cpu_ticks(shim.pid)
        with pytest.raises(subprocess.TimeoutExpired):
            shim.wait(timeout=1)  # a measurement window, not a synchronisation
        assert _cpu_ticks(shim.pid) - before <= 5  # 50 ms of CPU in 1 s at most: no busy loop
    finally:
        for client in clients:
            client.close()
        theirs.close()  # the "init" is gone: the shim finishes
    assert shim.wait(timeout=10) == 0
