"""`minirun-oci exec` against a container process that attacks what it starts (issue 18, door 5):
like runc's, no process of the runtime is ever both visible in the container and open to a
ptrace from it, so the filter an exec'd process asks for is always in force.
tests/integration/test_escape_init.py has the same attack on `minirun exec`."""

from __future__ import annotations

import json
import os

import pytest

from conftest import write_config
from helpers import build_probe, wait_for

# a filter of our own: runc spec's config has none
SECCOMP = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["add_key"], "action": "SCMP_ACT_ERRNO"}]}


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory):
    return build_probe(tmp_path_factory.mktemp("probe"))


def test_oci_exec_is_never_caught_before_its_seccomp_filter(tmp_path, bundle, oci, probe_dir):
    log = tmp_path / "attacker.log"
    path = bundle(["/bin/sh", "-c", "exec /probe/probe seize-new > /out/attacker.log"])
    config = json.load(open(os.path.join(path, "config.json")))
    config["linux"]["seccomp"] = SECCOMP
    config["mounts"] += [{"destination": "/probe", "type": "bind", "source": probe_dir, "options": ["rbind", "ro"]},
                         {"destination": "/out", "type": "bind", "source": str(tmp_path), "options": ["rbind"]}]
    write_config(path, config)
    assert oci("run", "-d", "--bundle", path, "seize").returncode == 0
    try:
        assert wait_for(lambda: "ready" in log.read_text(), 30)
        for _ in range(40):
            out = oci("exec", "seize", "grep", "Seccomp:", "/proc/self/status")
            assert out.stdout == "Seccomp:\t2\n", out
        caught = [line for line in log.read_text().splitlines()
                  if line.startswith("seized") and "gone before" not in line]
        assert not [line for line in caught if "minirun" in line or "seccomp=2" not in line], caught
        # control: the attacker seizes a dumpable process of the container it may trace
        assert oci("exec", "--detach", "seize", "/bin/sleep", "60").returncode == 0
        assert wait_for(lambda: log.read_text().count("exe=/bin/busybox") > sum("busybox" in c for c in caught), 30), \
            log.read_text()
    finally:
        oci("delete", "--force", "seize")  # kills what is left in its cgroup and waits for it



def test_oci_pid_1_is_the_bundles_process_and_stays_traceable(bundle, oci, probe_dir):
    """minirun-oci has no minirun-init: PID 1 is the bundle's process, which a container holding
    CAP_SYS_PTRACE may trace and read, as under runc. `minirun run`'s guard of its own PID 1
    (minirun/seccomp_guard.py, tests/integration/test_escape_init.py) must not reach here."""
    path = bundle(["/bin/sh", "-c", "/probe/probe ptrace 1; echo ptrace=$?; /probe/probe read-mem 1 proc-mem; "
                   "echo mem=$?"])
    config = json.load(open(os.path.join(path, "config.json")))
    config["process"]["capabilities"] = {kind: names + ["CAP_SYS_PTRACE"]
                                         for kind, names in config["process"]["capabilities"].items()}
    config["mounts"].append({"destination": "/probe", "type": "bind", "source": probe_dir, "options": ["rbind", "ro"]})
    write_config(path, config)
    out = oci("run", "--bundle", path, "ptr")
    assert "ptrace=0" in out.stdout and "mem=0" in out.stdout, out.stdout + out.stderr
