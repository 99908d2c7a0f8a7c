"""Interactive terminals (issue 12): `run -it`, `exec -it`, `run -d -it` + attach.

Each test drives minirun from a real pty made here (os.openpty): minirun's stdin,
stdout and stderr are its slave, as a user's terminal would be, and the test types
into the master and reads what appears, waiting for patterns rather than sleeping.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import time

import pytest

from helpers import Terminal, inspect, minirun, wait_for

CTRL_C, CTRL_Z, CTRL_BACKSLASH, CTRL_P, CTRL_Q = b"\x03", b"\x1a", b"\x1c", b"\x10", b"\x11"
PROMPT = rb"/ # "


def foreground_pid(argv: list[str], timeout: float = 10) -> int:
    """The host pid of the process running ``argv`` once it is its terminal's foreground
    job (pgrp == tpgid in /proc/PID/stat): a key typed now goes to it."""
    wanted = ("\0".join(argv) + "\0").encode()
    found = []

    def look() -> bool:
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if f.read() != wanted:
                        continue
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[2] == fields[5]:  # pgrp == tpgid
                found.append(int(name))
                return True
        return False

    assert wait_for(look, timeout), f"{argv} never became a foreground job"
    return found[0]


def children(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def fd_stats(pid: int) -> list[os.stat_result]:
    fds = sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))
    return [os.stat(f"/proc/{pid}/fd/{fd}") for fd in fds]


@pytest.fixture
def shell(rootfs):
    with Terminal("run", "-it", rootfs, "/bin/sh") as term:
        term.expect(PROMPT)
        yield term


def test_shell_has_a_pty_of_its_own_devpts_as_console(shell):
    shell.send(b"tty; ls /dev/pts; echo TERM=$TERM\n")
    shell.expect(rb"\r\n/dev/pts/0\r\n0\s+ptmx\r\nTERM=\S+\r\n")
    # /dev/console is that same pty (runc's bind mount)
    shell.send(b"stat -L -c C=%t:%T /dev/console $(tty)\n")
    match = shell.expect(rb"C=(\w+:\w+)\r\nC=(\w+:\w+)\r\n")
    assert match.group(1) == match.group(2) == b"88:0"  # 136:0
    # seen from the host: every fd of the shell is that pty, and the init keeps only
    # minirun's stdio and its report socket: neither the master nor the console socket
    init, = children(shell.proc.pid)
    sh, = children(init)
    devices = {(st.st_dev, st.st_rdev) for st in fd_stats(sh) if st.st_rdev != os.makedev(5, 0)}  # ash's /dev/tty
    host_tty = os.fstat(shell.slave)
    assert len(devices) == 1
    dev, rdev = devices.pop()
    assert os.major(rdev) == 136 and dev != host_tty.st_dev  # a pty, of another devpts instance
    init_fds = fd_stats(init)
    assert [(st.st_dev, st.st_rdev) for st in init_fds[:3]] == [(host_tty.st_dev, host_tty.st_rdev)] * 3
    assert len(init_fds) == 4 and stat.S_ISSOCK(init_fds[3].st_mode)
    shell.send(b"exit\n")
    assert shell.wait() == 0


def test_stty_size_follows_the_window(shell):
    shell.send(b"stty size\n")
    shell.expect(rb"\r\n30 100\r\n")
    shell.resize(41, 132)
    shell.send(b"stty size\n")
    shell.expect(rb"\r\n41 132\r\n")
    shell.send(b"exit\n")
    assert shell.wait() == 0


def test_ctrl_c_z_backslash_reach_the_foreground_job(shell):
    shell.send(b"sleep 1231\n")
    foreground_pid(["sleep", "1231"])
    shell.send(CTRL_C)
    shell.expect(rb"\^C\r\n" + PROMPT, timeout=5)
    shell.send(b"sleep 1232\n")
    foreground_pid(["sleep", "1232"])
    shell.send(CTRL_Z)
    shell.expect(rb"Stopped\s+sleep 1232\r\n" + PROMPT, timeout=5)
    shell.send(b"fg\n")  # job control: back in the foreground, where Ctrl-\\ finds it
    foreground_pid(["sleep", "1232"])
    shell.send(CTRL_BACKSLASH)
    shell.expect(rb"Quit.*\r\n" + PROMPT, timeout=5)
    assert shell.proc.poll() is None  # minirun itself got none of them
    shell.send(b"exit 3\n")
    assert shell.wait() == 3
    assert shell.termios_restored()


def test_termios_restored_and_nothing_left(rootfs):
    with Terminal("run", "-it", rootfs, "/bin/sh") as term:
        term.expect(PROMPT)
        term.send(b"exit 3\n")
        assert term.wait() == 3
        assert term.termios_restored()


def test_sigterm_to_minirun_restores_the_terminal(rootfs):
    with Terminal("run", "-it", rootfs, "sleep", "1233") as term:
        foreground_pid(["sleep", "1233"])
        term.proc.send_signal(signal.SIGTERM)  # forwarded to COMMAND, which dies of it
        assert term.wait() == 128 + signal.SIGTERM
        assert term.termios_restored()


def test_failed_start_leaves_the_terminal_alone(rootfs):
    with Terminal("run", "-it", rootfs, "/no/such/command") as term:
        assert term.wait() == 127
        assert b"minirun: /no/such/command: command not found" in term.rest()
        assert term.termios_restored()


def test_output_written_just_before_exit_is_kept(rootfs):
    for _ in range(5):
        with Terminal("run", "-t", rootfs, "/bin/sh", "-c", "seq 1 20000; echo last-words") as term:
            term.expect(rb"\n20000\r+\nlast-words\r+\n")  # -t without -i: the host terminal is not raw
            assert term.wait() == 0


def test_tty_without_a_terminal_is_refused(rootfs):
    out = minirun("run", "-t", rootfs, "true", stdin=subprocess.DEVNULL)
    assert out.returncode == 125
    assert out.stderr == "minirun: the input device is not a TTY\n"
    out = minirun("run", "-it", rootfs, "true", stdin=subprocess.DEVNULL)
    assert (out.returncode, out.stderr) == (125, "minirun: the input device is not a TTY\n")


def test_interactive_with_a_pipe(rootfs):
    out = minirun("run", "-i", rootfs, "cat", input="hi\n")
    assert (out.returncode, out.stdout) == (0, "hi\n")


@pytest.fixture
def detached(rootfs):
    name = f"tty-{os.getpid()}"
    yield name
    minirun("rm", "-f", name)


def test_exec_it_in_a_running_container(rootfs, detached):
    out = minirun("run", "-d", "--name", detached, rootfs, "sleep", "1000")
    assert out.returncode == 0, out.stderr
    with Terminal("exec", "-it", detached, "/bin/sh") as term:
        term.expect(PROMPT)
        term.send(b"tty; stty size; ls /dev/pts\n")
        term.expect(rb"\r\n/dev/pts/0\r\n30 100\r\n0\s+ptmx\r\n")
        term.resize(33, 90)
        term.send(b"stty size\n")
        term.expect(rb"\r\n33 90\r\n")
        term.send(b"sleep 1234\n")
        foreground_pid(["sleep", "1234"])
        term.send(CTRL_C)
        term.expect(rb"\^C\r\n" + PROMPT, timeout=5)
        term.send(b"exit 4\n")
        assert term.wait() == 4
        assert term.termios_restored()
    out = minirun("exec", "-t", detached, "true", stdin=subprocess.DEVNULL)
    assert (out.returncode, out.stderr) == (125, "minirun: the input device is not a TTY\n")


def test_attach_and_detach(rootfs, detached):
    out = minirun("run", "-d", "-it", "--name", detached, rootfs, "/bin/sh")
    assert out.returncode == 0, out.stderr
    with Terminal("attach", detached) as term:
        term.send(b"echo hello-$((6*7))\n")
        term.expect(rb"\r\nhello-42\r\n")
        term.send(b"stty size\n")
        term.expect(rb"\r\n30 100\r\n")  # the attached terminal's size
        term.send(CTRL_P + CTRL_Q)
        assert term.wait() == 0
        assert term.termios_restored()
    assert inspect(detached)["status"] == "running"
    assert "hello-42" in minirun("logs", detached).stdout
    with Terminal("attach", "--detach-keys", "ctrl-a,d", detached) as term:
        term.send(b"echo again-$((2*3))\n")
        term.expect(rb"\r\nagain-6\r\n")
        term.send(b"\x01d")
        assert term.wait() == 0
    with Terminal("attach", detached) as term:
        term.send(b"exit 5\n")
        assert term.wait() == 5
        assert term.termios_restored()
    st = inspect(detached)
    assert (st["status"], st["exit_code"]) == ("exited", 5)


def test_attach_needs_a_terminal_container(rootfs, detached):
    out = minirun("run", "-d", "--name", detached, rootfs, "sleep", "1000")
    assert out.returncode == 0, out.stderr
    out = minirun("attach", detached)
    assert out.returncode == 125
    assert out.stderr.startswith("minirun: ") and "run -d -t" in out.stderr


def test_oci_console_socket_receives_the_master(rootfs, tmp_path):
    """What `minirun-oci` does for terminal: true with --console-socket: the master goes
    to the socket's listener with the pty's path, as runc sends it."""
    import socket
    import threading

    from minirun import container
    from minirun.spec import ContainerSpec, Process
    from minirun.tty import ConsoleSocket, receive_master

    path = str(tmp_path / "console.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    got = {}

    def console_owner():
        conn, _ = listener.accept()
        with conn:
            master, got["name"] = receive_master(conn)
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the container is gone
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        got["out"] = out

    owner = threading.Thread(target=console_owner)
    owner.start()
    spec = ContainerSpec(rootfs=rootfs, process=Process(["/bin/sh", "-c", "tty; stty size; echo TERM=$TERM"],
                                                        terminal=True))
    with ConsoleSocket(path, size=(25, 81)) as console:
        result = container.run(spec, terminal=console)
    owner.join(10)
    listener.close()
    assert result.exit_code == 0
    assert got["name"] == "/dev/pts/0"
    assert re.search(rb"^/dev/pts/0\r\n25 81\r\nTERM=\S+\r\n", got["out"]), got["out"]


def test_tty_of_a_non_root_user(rootfs):
    """COMMAND running as another user owns its terminal and can open it by name."""
    with Terminal("run", "-t", "-u", "1000:1000", rootfs, "/bin/sh", "-c",
                  "tty; stat -c %u:%g $(tty); echo ok > $(tty)") as term:
        term.expect(rb"/dev/pts/0\r+\n1000:1000\r+\nok\r+\n")
        assert term.wait() == 0


def test_tty_in_a_user_namespace(rootfs):
    with Terminal("run", "-it", "--userns", "--userns-map", "0:100000:65536", "--no-overlay", rootfs,
                  "/bin/sh", "-c", "tty; stty size; cat /proc/self/uid_map") as term:
        term.expect(rb"/dev/pts/0\r\n30 100\r\n\s+0\s+100000\s+65536\r\n")
        assert term.wait() == 0


def test_oom_kill_restores_the_terminal(rootfs):
    with Terminal("run", "-it", "-m", "32m", rootfs, "tail", "/dev/zero") as term:
        assert term.wait(60) == 137
        assert b"killed: out of memory" in term.rest()
        assert term.termios_restored()


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_idle_relay_does_not_spin(shell):
    before = cpu_ticks(shell.proc.pid)
    time.sleep(1)  # a measurement window, not a synchronisation
    assert cpu_ticks(shell.proc.pid) - before <= 5  # 50 ms of CPU in 1 s at most: poll, no busy loop
    shell.send(b"exit\n")
    assert shell.wait() == 0


def test_an_idle_shim_and_its_attach_client_do_not_spin(rootfs, detached):
    """Both ends of the attach protocol (csrc/attach.c) wait in poll while nothing happens."""
    out = minirun("run", "-d", "-it", "--name", detached, rootfs, "/bin/sh")
    assert out.returncode == 0, out.stderr
    shim = inspect(detached)["owner"]
    with Terminal("attach", detached) as term:
        term.send(b"echo ready-$((6*7))\n")
        term.expect(rb"\r\nready-42\r\n")
        before = cpu_ticks(shim), cpu_ticks(term.proc.pid)
        time.sleep(1)  # a measurement window, not a synchronisation
        after = cpu_ticks(shim), cpu_ticks(term.proc.pid)
        assert after[0] - before[0] <= 5 and after[1] - before[1] <= 5, (before, after)
        term.send(b"exit 0\n")
        assert term.wait() == 0
