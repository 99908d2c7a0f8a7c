"""How a container's processes come to be (csrc/spawn.c, exec.c): a vfork of the interpreter that
execs the sealed minirun-init at once, which sets the container up, or joins a running one, from
the packed request."""

from __future__ import annotations

import subprocess
import sys

# A fresh interpreter runs containers through the API and counts its own page faults over them.
_FAULTS = """
import os, resource, sys
from minirun import ContainerSpec, Limits, Process, run
devnull = os.open(os.devnull, os.O_RDWR)
def one():
    spec = ContainerSpec(rootfs=sys.argv[1], process=Process(["/bin/true"]),
                         limits=Limits.from_cpus(0.5, memory=64 << 20, pids=64))
    assert run(spec, stdio=(devnull,) * 3).exit_code == 0
for _ in range(3):
    one()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    one()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def test_the_interpreter_shares_no_memory_with_its_containers(rootfs):
    """The init's child never holds the interpreter's pages copy-on-write, so a container costs
    the Python parent no page faults afterwards: a fork-like child (as before) write-protected
    every page, and each one Python wrote next took a fault, ~450 per container here."""
    out = subprocess.run([sys.executable, "-c", _FAULTS, rootfs], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) < 50, f"{out.stdout.strip()} page faults per container"



_EXEC_FAULTS = """
import resource, sys
from minirun import lifecycle
for _ in range(3):
    assert lifecycle.exec_in(sys.argv[1], ["/bin/true"]) == 0
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    assert lifecycle.exec_in(sys.argv[1], ["/bin/true"]) == 0
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def test_exec_shares_no_memory_with_the_interpreter_either(rootfs):
    """`minirun exec` (and minirun-oci's, which engines run for every probe): the process that
    joins the container is a vfork that execs minirun-init too, not a fork-like copy of the
    interpreter (~330 page faults an exec before)."""
    from helpers import minirun

    name = "spawn-exec-faults"
    assert minirun("run", "-d", "--name", name, rootfs, "/bin/sleep", "100").returncode == 0
    try:
        out = subprocess.run([sys.executable, "-c", _EXEC_FAULTS, name], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        assert float(out.stdout) < 50, f"{out.stdout.strip()} page faults per exec"
    finally:
        minirun("rm", "-f", name)


def test_a_user_namespace_init_left_at_sync_1_exits(rootfs):
    """With a user namespace the init waits for sync 1 as a fork-like child, a copy of the
    interpreter's fds until its exec: the go pipe's write end among them, so the read saw no EOF
    when a detached creator (minirun-oci create: no PDEATHSIG) went away first, and it waited
    forever. Here the creator closes go without a byte, as its death would."""
    import os
    import select

    from minirun import syscalls

    child = syscalls.spawn(rootfs=rootfs, hostname=None, namespaces=["user", "pid", "mount"], cgroup_fd=None,
                           tasks_fds=[], pre_plan=[], plan=[], readonly_root=False, argv=["/bin/true"], envp=[],
                           path="/bin", cwd="/", oci={"detached": True})
    pidfd = os.pidfd_open(child.pid)
    try:
        child.close_go()
        ended, _, _ = select.select([pidfd], [], [], 30)  # a bound for the failure, not a wait
        if not ended:
            os.kill(child.pid, 9)
        _, status = os.waitpid(child.pid, 0)
    finally:
        os.close(pidfd)
        child.close()
    assert ended and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 125, status


# A fresh interpreter (its first container makes its own network namespace) runs containers
# through the API and reports the network namespaces each joined and the ones it holds made ahead.
_AHEAD = """
import json, os, sys
from minirun import ContainerSpec, Process, run
from minirun.errors import MiniRunError

def held():
    '''The network namespaces this process holds open (the pool's), by inode.'''
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("net:["):
            found.append(int(link[5:-1]))
    return found

def made_ahead():
    assert aside.settled(timeout=30)  # an event: the thread has one ready (bounded: a failure, not a wait)
    return held()

joined = []
def one(command):
    hold, go = os.pipe()  # COMMAND waits for EOF on stdin: it has not exited when we look at it
    r, w = os.pipe()

    def started(_id, pid):
        joined.append(os.stat(f"/proc/{pid}/ns/net").st_ino)
        os.close(go)

    result = run(ContainerSpec(rootfs=sys.argv[1], process=Process(["/bin/sh", "-c", "read x; " + command])),
                 stdio=(hold, w, None), on_started=started)
    os.close(hold)
    os.close(w)
    text = os.read(r, 65536).decode()
    os.close(r)
    return result.exit_code, text

from minirun import aside
closed_aside = []
_close_later = aside.close_later
def close_later(fd):
    link = os.readlink(f"/proc/self/fd/{fd}")
    given = _close_later(fd)
    if given:
        closed_aside.append(link)
    return given
aside.close_later = close_later

def state_dirs_open():
    from minirun.settings import STATE_ROOT
    assert aside.settled(timeout=30)  # an event: the thread has closed what it was given
    links = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return [link for link in links if link.startswith(STATE_ROOT)]

report = {"host": os.stat("/proc/self/ns/net").st_ino}
one("true")
report["threads after one run"] = len(os.listdir("/proc/self/task"))
one("true")
report["ready"] = made_ahead()
report["third"] = one("ls /sys/class/net; cat /sys/class/net/lo/flags")
report["closed aside"] = list(closed_aside)
report["state dirs open"] = state_dirs_open()
report["ready again"] = made_ahead()
try:  # taken, then the init finds no COMMAND: nothing of the namespace stays open but the next one's
    run(ContainerSpec(rootfs=sys.argv[1], process=Process(["/nonexistent"])))
except MiniRunError as err:
    report["missing"] = type(err).__name__
report["after a fourth"] = made_ahead()
report["joined"] = joined
if sys.argv[2] == "fork":
    pid = os.fork()
    if pid == 0:  # the parent's namespaces made ahead are its to hand out, never the child's too
        os._exit(0 if not held() else 1)
    report["fork"] = os.waitpid(pid, 0)[1]
print(json.dumps(report))
"""


def _ahead(rootfs: str, mode: str = "") -> dict:
    import json

    out = subprocess.run([sys.executable, "-c", _AHEAD, rootfs, mode], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_from_a_process_s_second_container_on_the_network_namespace_is_made_ahead(rootfs):
    """minirun/aside.py: a thread makes the next container's network namespace while one runs (~0.3-0.4
    ms of a clone's ~0.5 here), and the init joins it. A single run starts no thread; a namespace
    made ahead holds only lo, up, and goes to one container; the process holds one ready, no more.
    (Namespaces are compared by inode only while both are alive: the kernel reuses the numbers.)"""
    report = _ahead(rootfs)
    joined = report["joined"]
    assert report["threads after one run"] == 1
    assert len(joined) == 3 and report["host"] not in joined, report
    # held open by the pool until the init joined it: the third container's is that namespace
    assert len(report["ready"]) == 1 and joined[2] == report["ready"][0], report
    assert report["third"] == [0, "lo\n0x9\n"], report["third"]  # IFF_UP | IFF_LOOPBACK
    # the state directory's last close, which waits for a discard here, is the thread's (from
    # the second run on, when it runs): the claim's directory, removed already
    assert len(report["closed aside"]) == 2 and all(c.endswith(" (deleted)") for c in report["closed aside"]), report
    assert report["state dirs open"] == [], report
    assert report["missing"] == "CommandNotFound"
    assert len(report["after a fourth"]) == 1, report  # the failed run's namespace was not kept


def test_a_forked_child_holds_none_of_the_namespaces_made_ahead(rootfs):
    assert _ahead(rootfs, "fork")["fork"] == 0


_SINGLE = """
import os, sys
from minirun import ContainerSpec, Process, aside, run
aside.ENABLED = False
for _ in range(3):
    assert run(ContainerSpec(rootfs=sys.argv[1], process=Process(["/bin/true"]))).exit_code == 0
print(len(os.listdir("/proc/self/task")))
"""


def test_a_process_can_keep_itself_single_threaded(rootfs):
    """minirun.aside.ENABLED = False: no thread aside, for a caller that means to unshare its own
    user namespace or join another mount namespace afterwards (the kernel refuses both to a
    multithreaded process)."""
    out = subprocess.run([sys.executable, "-c", _SINGLE, rootfs], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
