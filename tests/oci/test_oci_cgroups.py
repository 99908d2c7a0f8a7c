"""A container's cgroups under minirun-oci, as engines use them: it is in every hierarchy
(runc joins them all), so its cgroup mount shows only its own cgroups, `update` can
pin its CPUs although create asked for no cpuset, and the v1-only memory fields
docker passes (--memory-swappiness, --oom-kill-disable, --kernel-memory) are applied."""

from __future__ import annotations

import json
import os

import pytest

from conftest import write_config

FREEZER = "/sys/fs/cgroup/freezer"


def _config(path: str) -> dict:
    with open(os.path.join(path, "config.json")) as f:
        return json.load(f)


@pytest.fixture
def victim():
    """A host cgroup of the test's own in the v1 freezer hierarchy (none on a v2 host)."""
    if not os.path.isdir(FREEZER):
        pytest.skip("no cgroup v1 freezer hierarchy on this host")
    path = os.path.join(FREEZER, f"minirun-escape-victim-{os.urandom(4).hex()}")
    os.mkdir(path)
    try:
        yield path
    finally:
        with open(os.path.join(path, "freezer.state"), "w") as f:
            f.write("THAWED")
        os.rmdir(path)


@pytest.mark.parametrize("cgroupns", [False, True], ids=["bound", "cgroupns"])
def test_the_cgroup_mount_shows_only_the_containers_own_cgroups(bundle, oci, victim, cgroupns):
    """Escape: a rw cgroup mount used to bind the host's root for every v1 hierarchy the
    container had not joined (freezer among them), so a container with default
    capabilities could list the host's tree and freeze a host cgroup. runc shows only the
    container's own. Positive control: the container sees its own freezer cgroup (a
    non-root cgroup: it has freezer.state, the host's root has none) and its own tasks."""
    name = os.path.basename(victim)
    script = (f"ls {FREEZER} | grep -qx {name} && echo SEES-HOST; "
              f"echo FROZEN > {FREEZER}/{name}/freezer.state 2>/dev/null && echo FROZE-HOST; "
              "find /sys/fs/cgroup -mindepth 2 -type d | grep -q . && echo HOST-TREE; "
              f"echo own=$(cat {FREEZER}/freezer.state) tasks=$(grep -c . {FREEZER}/tasks)")
    path = bundle(["/bin/sh", "-c", script])
    config = _config(path)
    for mount in config["mounts"]:
        if mount["type"] == "cgroup":
            mount["options"] = [o for o in mount["options"] if o != "ro"] + ["rw"]
    if cgroupns:
        config["linux"]["namespaces"].append({"type": "cgroup"})
    write_config(path, config)
    out = oci("run", "--bundle", path, f"cgview-{int(cgroupns)}")
    assert out.returncode == 0, out.stderr
    with open(os.path.join(victim, "freezer.state")) as f:
        assert f.read().strip() == "THAWED"
    lines = out.stdout.splitlines()
    assert lines[-1].startswith("own=THAWED tasks="), out.stdout  # the probe can read a freezer cgroup
    assert int(lines[-1].rsplit("=", 1)[1]) >= 1
    assert lines[:-1] == [], out.stdout


def test_update_pins_cpus_of_a_container_created_without_a_cpuset(bundle, oci, tmp_path):
    """kubelet's static CPU manager and `docker update --cpuset-cpus` update a container
    whose create asked for no cpuset: it must be in the v1 cpuset hierarchy all the same."""
    path = bundle(["/bin/sleep", "60"])
    assert oci("run", "-d", "--bundle", path, "cpus").returncode == 0
    try:
        before = oci("exec", "cpus", "grep", "Cpus_allowed_list", "/proc/self/status")
        assert before.returncode == 0, before.stderr
        resources = tmp_path / "resources.json"
        resources.write_text(json.dumps({"cpu": {"cpus": "0"}}))
        update = oci("update", "--resources", str(resources), "cpus")
        assert update.returncode == 0, update.stderr
        after = oci("exec", "cpus", "grep", "Cpus_allowed_list", "/proc/self/status")
        assert after.returncode == 0, after.stderr
        assert after.stdout.split() == ["Cpus_allowed_list:", "0"]
        resources.write_text(json.dumps({"memory": {"limit": 64 << 20}}))  # keeps the cpus pinned above
        assert oci("update", "--resources", str(resources), "cpus").returncode == 0
        again = oci("exec", "cpus", "grep", "Cpus_allowed_list", "/proc/self/status")
        assert again.stdout.split() == ["Cpus_allowed_list:", "0"]
        if (os.cpu_count() or 1) > 1:  # runc's flag form
            flags = oci("update", "--cpuset-cpus", "1", "cpus")
            assert flags.returncode == 0, flags.stderr
            last = oci("exec", "cpus", "grep", "Cpus_allowed_list", "/proc/self/status")
            assert last.stdout.split() == ["Cpus_allowed_list:", "1"]
    finally:
        assert oci("delete", "--force", "cpus").returncode == 0


@pytest.mark.skipif(not os.path.isdir("/sys/fs/cgroup/memory"), reason="v1 only: runc ignores them on v2")
def test_v1_only_memory_fields_are_applied(bundle, oci):
    """docker's --memory-swappiness, --oom-kill-disable and --kernel-memory used to fail
    create; runc writes them on v1 (kernel memory where the kernel still has the file)."""
    memory = "/sys/fs/cgroup/memory"
    path = bundle(["/bin/sh", "-c", f"cat {memory}/memory.swappiness; head -1 {memory}/memory.oom_control"])
    config = _config(path)
    config["linux"]["resources"]["memory"] = {"limit": 64 << 20, "swappiness": 30, "disableOOMKiller": True,
                                              "kernel": 32 << 20, "kernelTCP": 16 << 20}
    write_config(path, config)
    out = oci("run", "--bundle", path, "memv1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["30", "oom_kill_disable 1"]
    kmem = os.path.exists(f"{memory}/memory.kmem.limit_in_bytes")
    assert ("memory.kernel ignored" in out.stderr) is not kmem, out.stderr
