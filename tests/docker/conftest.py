"""The Docker lane: Docker 20.10's dockerd on private paths, with minirun-oci added as a
runtime beside runc, and every test run on both so that differences show.

dockerd keeps its default network setup (docker0, its iptables chains, FORWARD DROP):
that is what users run. hoststate.HostState saves what it changes and the lane's
end puts it back, also when a test or dockerd's start fails. Published ports go to
127.0.0.1 only.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from dockerd import IMAGE, RUNTIMES, Docker
from helpers import IS_ROOT
from hoststate import HostState, remove_empty_dirs
from isolation import hold_engine_lane


def _docker_cgroup_parents() -> set[str]:
    return set(glob.glob("/sys/fs/cgroup/*/docker"))


@pytest.fixture(scope="module")
def docker(rootfs):
    """Module scope, not session: dockerd, and FORWARD DROP with it, lives only while the lane runs,
    not through the rest of the suite."""
    if not IS_ROOT:
        pytest.skip("needs root (dockerd)")
    if not shutil.which("dockerd"):
        pytest.skip("docker.io is not installed (make deps)")
    release_lane = hold_engine_lane()  # before the host's state is saved: another suite's dockerd may be changing it
    host = HostState()
    base = tempfile.mkdtemp(prefix="mr-docker-")
    # Shared directories dockerd and containerd's shims make whatever their roots: removed
    # at the end only if we made them and only while empty (another engine may use them).
    run_dirs = [d for d in ("/run/containerd", "/run/docker") if not os.path.exists(d)]
    cgroups_before = _docker_cgroup_parents()
    engine = None
    markers: list[str] = []
    try:
        engine = Docker(base)
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        out = subprocess.run(engine.argv("import", "-", IMAGE), stdin=tar.stdout, capture_output=True, text=True,
                             timeout=120)
        tar.stdout.close()
        assert tar.wait() == 0 and out.returncode == 0, out.stderr
        yield engine
    finally:
        if engine is not None:
            markers = engine.stop()
        problems = host.restore(markers)
        for parent in [*(_docker_cgroup_parents() - cgroups_before), *run_dirs]:
            remove_empty_dirs(parent)
        problems += [f"mount {point}" for point in engine.mounts()] if engine else []
        if not problems:
            shutil.rmtree(base, ignore_errors=True)
        release_lane()
        assert not problems, f"host not restored or left behind: {problems}"



@pytest.fixture(params=RUNTIMES)
def runtime(request) -> str:
    return request.param


@pytest.fixture(autouse=True)
def containers_removed(request):
    """Each test's containers go at its end, and their cgroups with them (runc's delete and minirun-oci's)."""
    yield
    if "docker" not in request.fixturenames:
        return
    engine = request.getfixturevalue("docker")
    ids = engine("ps", "-aq", "--no-trunc").stdout.split()
    engine.remove_all()
    deadline = time.monotonic() + 10
    left = ids
    while left and time.monotonic() < deadline:
        left = [c for c in ids if glob.glob(f"/sys/fs/cgroup/*/docker/{c}")]
        time.sleep(0.05)
    assert not left, f"cgroups left behind by {left}"
