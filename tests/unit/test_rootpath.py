"""The resolver every container mount goes through (csrc/rootpath.c), on a plain
directory tree: symlinks and ``..`` never leave the root, and what is created
is created inside it. Run with openat2 and with the fallback walk (what a
kernel before 5.6 gets), which must agree."""

from __future__ import annotations

import errno
import os

import pytest

from minirun.syscalls import IN_ROOT_MKDIR, IN_ROOT_NOFOLLOW, NativeError, open_in_root


@pytest.fixture(params=["openat2", "walk"])
def mode(request, monkeypatch):
    if request.param == "walk":
        monkeypatch.setenv("MINIRUN_LEGACY_MOUNT_API", "1")
    else:
        monkeypatch.delenv("MINIRUN_LEGACY_MOUNT_API", raising=False)
    return request.param


@pytest.fixture
def tree(tmp_path):
    """root/ with hostile links, and outside/ beside it, which nothing may reach."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "etc").mkdir(parents=True)
    (root / "deep" / "dir").mkdir(parents=True)
    (root / "file").write_text("x")
    outside.mkdir()
    (outside / "secret").write_text("host")
    links = {
        "abs": "/etc",                      # absolute: the root's /etc
        "up": "../../../../..",             # as many '..' as you like: the root
        "rel": "deep/dir/../../etc",
        "host": str(outside),               # a host path: means root + that path
        "hostup": "../outside",             # relative, one level above the root
        "loop1": "loop2", "loop2": "loop1",
        "dangling": "/made/by/link",
        "chain": "abs/../up/abs",
        "magic": "/proc/self/root/etc",     # the root has no /proc
    }
    for name, to in links.items():
        os.symlink(to, root / name)
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    yield root, outside, fd
    os.close(fd)


def resolve(fd: int, path: str, how: int = 0) -> str:
    got = open_in_root(fd, path, how)
    try:
        return os.readlink(f"/proc/self/fd/{got}")
    finally:
        os.close(got)


@pytest.mark.parametrize("path, expect", [
    ("/etc", "etc"), ("etc", "etc"), ("/abs", "etc"), ("/up/etc", "etc"), ("/rel", "etc"),
    ("/chain", "etc"), ("/../../etc", "etc"), ("/deep/dir/../../../../etc", "etc"), ("/", ""),
    ("/up/up/deep/./dir/", "deep/dir"),
])
def test_links_and_dotdot_stay_inside_the_root(tree, mode, path, expect):
    root, _, fd = tree
    assert resolve(fd, path) == os.path.join(str(root), expect).rstrip("/")


@pytest.mark.parametrize("path", ["/host/secret", "/hostup/secret", "/../outside/secret", "/up/../outside/secret",
                                  "/magic"])
def test_paths_that_lead_out_on_the_host_do_not_resolve(tree, mode, path):
    root, outside, fd = tree
    # positive control: on the host, the same path does reach the outside file
    if path.startswith(("/host", "/hostup")):
        assert open(os.path.join(root, path.lstrip("/"))).read() == "host"
    with pytest.raises(NativeError) as err:
        resolve(fd, path)
    assert err.value.errno in (errno.ENOENT, errno.ELOOP)


def test_missing_directories_are_created_inside_the_root(tree, mode):
    root, outside, fd = tree
    made = resolve(fd, "/host/new/dir", IN_ROOT_MKDIR)
    assert made == str(root) + str(outside) + "/new/dir"
    assert sorted(os.listdir(outside)) == ["secret"]
    assert resolve(fd, "/hostup/x", IN_ROOT_MKDIR) == f"{root}/outside/x"
    assert resolve(fd, "/dangling/sub", IN_ROOT_MKDIR) == f"{root}/made/by/link/sub"
    assert sorted(os.listdir(outside)) == ["secret"]


def test_loops_not_directories_and_nofollow(tree, mode):
    _, _, fd = tree
    for path, err in [("/loop1", errno.ELOOP), ("/loop1/x", errno.ELOOP), ("/file/x", errno.ENOTDIR),
                      ("/missing", errno.ENOENT)]:
        with pytest.raises(NativeError) as got:
            resolve(fd, path)
        assert got.value.errno == err, path
    # NOFOLLOW: the link itself (the caller refuses to mount proc on it)
    assert resolve(fd, "/abs", IN_ROOT_NOFOLLOW).endswith("/root/abs")
    assert resolve(fd, "/abs/", IN_ROOT_NOFOLLOW).endswith("/root/etc")  # as the kernel: '/' follows


def test_plans_carry_container_paths_and_ro_on_the_bind_itself():
    """The C side resolves targets inside the root: the plan must not prefix the host's root."""
    from minirun.mounts import MS_BIND, MS_RDONLY, MS_REC, overlay_op, user_mount_ops
    from minirun.security import userns_plans
    from minirun.spec import Mount

    pre, post = user_mount_ops([Mount("/data/sub", "bind", "/srv/x", ["rbind", "ro"]),
                                Mount("/w", "bind", "/srv/y", ["rbind", "rw"]),
                                Mount("/t", "tmpfs", "tmpfs", ["nosuid"])])
    assert [(op.target, op.flags) for op in pre] == [("/data/sub", MS_BIND | MS_REC | MS_RDONLY),
                                                     ("/w", MS_BIND | MS_REC)]
    assert [op.target for op in post] == ["/t"]
    assert overlay_op("/l", "/u", "/w").target == "/"
    from minirun.mounts import DEFAULT_PLAN
    moved, _ = userns_plans((), DEFAULT_PLAN, overlay=False)
    assert all(op.target.startswith(("/proc", "/sys", "/dev")) for op in moved)
