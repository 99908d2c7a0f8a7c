"""Rootless containers: an unprivileged user runs `minirun run --userns`.

The kernel must allow unprivileged user namespaces; the user becomes root in the
container's own user namespace (uid_map "0 <uid> 1"), gets no cgroups and no
network but loopback, and state lives in its own runtime directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

HARNESS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "rootless_harness.py")
NOBODY = 65534


def as_nobody(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, HARNESS, *args], capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture(scope="module")
def user_home():
    """A directory of the user's own (pytest's tmp dirs are root's, mode 0700)."""
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "true"], user=NOBODY, capture_output=True)
    if probe.returncode != 0:
        pytest.skip("this kernel does not allow unprivileged user namespaces")
    home = tempfile.mkdtemp(prefix="minirun-rootless-")
    os.chown(home, NOBODY, NOBODY)
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def user_rootfs(rootfs, user_home):
    """A copy of the rootfs owned by the user: files of other owners stay read-only in a rootless container."""
    path = os.path.join(user_home, "rootfs")
    shutil.copytree(rootfs, path, symlinks=True)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
            os.lchown(name, NOBODY, NOBODY)
    return path


@pytest.fixture
def runtime_dir(user_home):
    d = tempfile.mkdtemp(prefix="xdg-", dir=user_home)
    os.chown(d, NOBODY, NOBODY)
    return {**os.environ, "XDG_RUNTIME_DIR": d}, d


def test_a_user_is_root_in_its_own_user_namespace(user_rootfs, runtime_dir):
    env, state = runtime_dir
    out = as_nobody("run", "--userns", "--hostname", "mine", user_rootfs, "/bin/sh", "-c",
                    "id -u; cat /proc/self/uid_map; hostname; echo written > /etc/new && cat /etc/new; "
                    "ls /sys/class/net; exit 4", env=env)
    assert out.returncode == 4, out.stderr
    lines = out.stdout.split()
    assert lines[:4] == ["0", "0", str(NOBODY), "1"]
    assert lines[4:] == ["mine", "written", "lo"]
    assert not os.path.exists(os.path.join(user_rootfs, "etc", "new")), "the overlay let a write through"
    assert os.listdir(os.path.join(state, "minirun")) == [], "state left behind"


def test_rootless_detached_and_exec(user_rootfs, runtime_dir, user_home):
    """A detached container's root writes go to the user's data directory, on disk (not its
    runtime directory, a tmpfs on most hosts), beside its log; `rm` removes both."""
    env, state = runtime_dir
    env = dict(env, XDG_DATA_HOME=os.path.join(user_home, "data"))
    out = as_nobody("run", "--userns", "-d", "--name", "rl-bg", user_rootfs, "/bin/sh", "-c",
                    "echo written > /f && exec sleep 30", env=env)
    assert out.returncode == 0, out.stderr
    data = os.path.join(user_home, "data", "minirun", "containers", "rl-bg")
    try:
        out = as_nobody("exec", "rl-bg", "/bin/sh", "-c", "cat /proc/self/uid_map; cat /proc/1/comm; cat /f", env=env)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["0", str(NOBODY), "1", "minirun-init", "written"]
        with open(os.path.join(data, "upper", "f")) as f:
            assert f.read() == "written\n"
        assert os.listdir(os.path.join(state, "minirun", "rl-bg")) == ["state.json"]
    finally:
        assert as_nobody("rm", "-f", "rl-bg", env=env).returncode == 0
    assert os.listdir(os.path.join(state, "minirun")) == [] and not os.path.exists(data)


@pytest.mark.parametrize("args, message", [
    ([], "minirun must run as root"),
    (["--userns", "--memory", "64m"], "cgroup limits need root"),
    (["--userns", "--network", "bridge"], "--network none only"),
    (["--userns-map", "0:100000:65536"], "the only id map the kernel allows is your own"),
])
def test_what_a_rootless_container_cannot_have(user_rootfs, runtime_dir, args, message):
    env, state = runtime_dir
    out = as_nobody("run", *args, user_rootfs, "/bin/true", env=env)
    assert out.returncode == 125 and message in out.stderr, out.stderr
    assert not os.path.exists(os.path.join(state, "minirun")) or os.listdir(os.path.join(state, "minirun")) == []
