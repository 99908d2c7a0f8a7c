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
