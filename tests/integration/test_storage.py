"""Volumes, tmpfs, read-only root and the copy-on-write overlay root."""

from __future__ import annotations

import glob
import hashlib
import time
import os
import shutil

from helpers import minirun, popen_minirun, wait_for
from minirun.mounts import VOLATILE
from minirun.settings import CGROUP_PARENT, LOG_ROOT, STATE_ROOT


def tree_digest(root: str) -> str:
    """Names, modes, link targets and contents of every entry: any change shows."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            h.update(f"{os.path.relpath(path, root)} {st.st_mode} {st.st_uid} {st.st_size}".encode())
            if os.path.islink(path):
                h.update(os.readlink(path).encode())
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


def test_volume_is_shared_with_the_host_and_outlives_the_container(rootfs, tmp_path):
    (tmp_path / "in").write_text("from the host\n")
    out = minirun("run", "-v", f"{tmp_path}:/data", rootfs, "/bin/sh", "-c", "cat /data/in; echo from inside > /data/out")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "from the host\n"
    assert (tmp_path / "out").read_text() == "from inside\n"


def test_read_only_volume_refuses_writes(rootfs, tmp_path):
    out = minirun("run", "-v", f"{tmp_path}:/data:ro", rootfs, "/bin/sh", "-c", "echo x > /data/f")
    assert out.returncode != 0 and "Read-only file system" in out.stderr
    assert not (tmp_path / "f").exists()


def test_bad_volumes_are_refused(rootfs, tmp_path):
    for bad in [f"{tmp_path}/missing:/data", "relative:/data", f"{tmp_path}:data", f"{tmp_path}:/", f"{tmp_path}:/d:rx",
                f"{tmp_path}:/../etc"]:
        out = minirun("run", "-v", bad, rootfs, "/bin/true")
        assert out.returncode == 125 and out.stderr.startswith("minirun: invalid -v "), (bad, out.stderr)


def test_tmpfs_with_a_size(rootfs):
    out = minirun("run", "--tmpfs", "/scratch:size=1m", rootfs, "/bin/sh", "-c",
                  "grep ' /scratch ' /proc/mounts; head -c 2000000 /dev/zero > /scratch/big; echo rc=$?")
    assert out.returncode == 0, out.stderr
    assert "tmpfs" in out.stdout and "size=1024k" in out.stdout
    assert "rc=1" in out.stdout  # the second megabyte does not fit


def test_read_only_root(rootfs):
    out = minirun("run", "--read-only", "--tmpfs", "/tmp", rootfs, "/bin/sh", "-c",
                  "touch /etc/x 2>/dev/null && echo ROOT-WRITABLE; mount -o remount,rw / 2>/dev/null && "
                  "touch /etc/y 2>/dev/null && echo REMOUNTED; touch /tmp/ok && echo tmp-ok")
    assert "ROOT-WRITABLE" not in out.stdout
    assert "tmp-ok" in out.stdout


def test_base_rootfs_is_unchanged_after_writes_everywhere(rootfs):
    before = tree_digest(rootfs)
    script = ("for d in / /etc /bin /usr/bin /root /tmp /var /sbin; do echo junk > $d/junk-file; done; "
              "rm -f /bin/ls /etc/passwd; chmod 000 /etc/group; ln -s /nowhere /etc/hosts.new; mkdir -p /new/dir; "
              "test -e /bin/ls || echo deleted-inside")
    out = minirun("run", rootfs, "/bin/sh", "-c", script)
    assert out.returncode == 0, out.stderr
    assert "deleted-inside" in out.stdout
    assert tree_digest(rootfs) == before


def test_no_overlay_writes_through_to_the_rootfs(rootfs, tmp_path):
    copy = tmp_path / "rootfs"
    shutil.copytree(rootfs, copy, symlinks=True)
    out = minirun("run", "--no-overlay", str(copy), "/bin/sh", "-c", "echo kept > /etc/kept")
    assert out.returncode == 0, out.stderr
    assert (copy / "etc" / "kept").read_text() == "kept\n"


def test_volume_data_survives_rm_of_a_detached_container(rootfs, tmp_path):
    out = minirun("run", "-d", "--name", "vol-keep", "-v", f"{tmp_path}:/data", rootfs, "/bin/sh", "-c",
                  "echo persisted > /data/kept")
    assert out.returncode == 0, out.stderr
    deadline = time.monotonic() + 10
    while minirun("inspect", "vol-keep").stdout.count('"exited"') == 0:
        assert time.monotonic() < deadline
    assert minirun("rm", "vol-keep").returncode == 0
    assert (tmp_path / "kept").read_text() == "persisted\n"


def _root_options(mountinfo: str) -> list[str]:
    """The super options of the mount at / in a /proc/self/mountinfo."""
    line = next(line for line in mountinfo.splitlines() if line.split()[4] == "/")
    return line.split(" - ")[1].split()[2].split(",")


def test_a_root_thrown_away_at_the_end_writes_to_a_tmpfs_of_its_own(rootfs):
    """A foreground container's writes never touch the host: its upper is a tmpfs of the container's
    mount namespace (nothing made, synced or removed in the host's state directory, nothing of
    the host's /run for it to fill)."""
    name = "scratch-root"
    proc = popen_minirun("run", "--rm", "--name", name, rootfs, "/bin/sh", "-c",
                         "echo written > /f && cat /f && exec sleep 100")
    try:
        assert proc.stdout.readline() == "written\n"
        state_dir = os.path.join(STATE_ROOT, name)
        assert os.listdir(state_dir) == ["state.json"]
    finally:
        minirun("kill", name)
        proc.wait(timeout=30)


def _written(path: str) -> bool:
    with open(path) as f:
        return f.read() == "written\n"


def test_a_kept_root_writes_to_disk_beside_its_log_until_rm(rootfs):
    """A detached container's upper and work outlive it, until `rm`: on disk in its data
    directory, beside its log (docker's writable layer under /var/lib/docker), never in its
    state directory under /run, a tmpfs: a big write there would fill the host's RAM."""
    name = "kept-root"
    assert minirun("run", "-d", "--name", name, rootfs, "/bin/sh", "-c", "echo written > /f && exec sleep 100"
                   ).returncode == 0
    data = os.path.join(LOG_ROOT, name)
    try:
        out = minirun("exec", name, "/bin/cat", "/proc/self/mountinfo")
        assert out.returncode == 0, out.stderr
        options = _root_options(out.stdout)
        assert f"upperdir={data}/upper" in options and f"workdir={data}/work" in options, options
        # never synced (the mount's end would sync the host's whole /var/lib filesystem): no mount reuses it
        assert any(o in ("volatile", "fsync=volatile") for o in options) or not VOLATILE, options
        assert wait_for(lambda: _written(os.path.join(data, "upper", "f")))
        assert sorted(os.listdir(data)) == ["log", "state-root", "upper", "work"]
        assert os.listdir(os.path.join(STATE_ROOT, name)) == ["state.json"]
        out = minirun("run", "-d", "--name", name, rootfs, "/bin/true")  # refused: the name is in use
        assert out.returncode == 125 and "already in use" in out.stderr
        assert _written(os.path.join(data, "upper", "f")), "a refused start touched its namesake's data"
    finally:
        assert minirun("rm", "-f", name).returncode == 0
    assert not os.path.exists(data) and not os.path.exists(os.path.join(STATE_ROOT, name))


def test_an_auto_removed_detached_root_goes_with_the_container(rootfs):
    name = "auto-root"
    assert minirun("run", "-d", "--rm", "--name", name, rootfs, "/bin/sh", "-c",
                   "echo written > /f && exec sleep 100").returncode == 0
    data = os.path.join(LOG_ROOT, name)
    try:
        assert wait_for(lambda: _written(os.path.join(data, "upper", "f")))
    finally:
        minirun("kill", name)
    assert wait_for(lambda: not os.path.exists(os.path.join(STATE_ROOT, name)))
    assert not os.path.exists(data)


def test_a_detached_start_that_fails_keeps_its_state_alone_and_rm_takes_the_rest(rootfs):
    """A start that fails once the name is claimed (here a bind of a file onto a directory)
    is recorded as exited, as docker keeps a container that failed to start; its data
    directory (log, empty upper and work) goes with `rm`."""
    name = "failed-root"
    out = minirun("run", "-d", "--name", name, "-v", "/etc/hostname:/bin", rootfs, "/bin/true")
    try:
        assert out.returncode == 125 and out.stderr.count("\n") == 1, out.stderr
        assert os.listdir(os.path.join(STATE_ROOT, name)) == ["state.json"]
        assert set(os.listdir(os.path.join(LOG_ROOT, name))) <= {"log", "state-root", "upper", "work"}
    finally:
        assert minirun("rm", "-f", name).returncode == 0
    assert not os.path.exists(os.path.join(LOG_ROOT, name)) and not os.path.exists(os.path.join(STATE_ROOT, name))


def test_a_data_directory_is_its_state_roots_alone(rootfs, tmp_path):
    """Two state roots share one data root: a rootless user's sessions with and without
    $XDG_RUNTIME_DIR (its runtime directory, or /tmp/minirun-UID) both keep data in
    ~/.local/share, root's MINIRUN_STATE_ROOT without MINIRUN_LOG_ROOT. The other root's
    gc, rm and start of the name must leave a live container's writable layer and log alone:
    its state is not gone, it is elsewhere."""
    name = "shared-data"
    from minirun.settings import CGROUP_PARENT

    other = {**os.environ, "MINIRUN_STATE_ROOT": str(tmp_path / "other"), "MINIRUN_CGROUP_PARENT": CGROUP_PARENT + "-o"}
    assert minirun("run", "-d", "--name", name, rootfs, "/bin/sh", "-c", "echo written > /f && exec sleep 100"
                   ).returncode == 0
    data = os.path.join(LOG_ROOT, name)
    try:
        assert wait_for(lambda: _written(os.path.join(data, "upper", "f")))
        out = minirun("gc", env=other)
        assert out.returncode == 0 and name not in out.stdout, out.stdout
        assert _written(os.path.join(data, "upper", "f")), "another root's gc removed a live container's layer"
        out = minirun("run", "-d", "--name", name, rootfs, "/bin/true", env=other)
        assert out.returncode == 125 and "already in use" in out.stderr and out.stderr.count("\n") == 1, out.stderr
        assert not os.path.lexists(tmp_path / "other" / name)  # the refused start left no record
        assert "no such container" in minirun("rm", "-f", name, env=other).stderr
        assert _written(os.path.join(data, "upper", "f")), "another root's start or rm of the name touched it"
    finally:
        assert minirun("rm", "-f", name).returncode == 0
    assert not os.path.exists(data)


def test_a_data_root_on_overlayfs_is_named_as_the_reason_a_detached_start_fails(rootfs, tmp_path):
    """minirun inside a docker or podman container: /var/lib is the image's overlayfs, which
    overlayfs refuses as an upper with a bare EINVAL. The one line says where and what to do.
    In a mount namespace of the test's own, an overlayfs stands in for that /var/lib."""
    import subprocess
    import sys

    for d in ("lower", "upper", "work", "merged"):
        (tmp_path / d).mkdir(mode=0o700)
    data_root, state_root = tmp_path / "merged" / "containers", tmp_path / "state"
    minirun_cmd = f"MINIRUN_LOG_ROOT={data_root} MINIRUN_STATE_ROOT={state_root} {sys.executable} -m minirun"
    script = (f"mount -t overlay overlay -o lowerdir={tmp_path}/lower,upperdir={tmp_path}/upper,"
              f"workdir={tmp_path}/work {tmp_path}/merged && "
              f"{minirun_cmd} run -d --name ovl {rootfs} /bin/true; echo status=$?; {minirun_cmd} rm -f ovl")
    out = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                         capture_output=True, text=True, timeout=60)
    assert "status=125" in out.stdout, out
    assert out.stderr.count("\n") == 1 and "is on overlayfs" in out.stderr and "MINIRUN_LOG_ROOT" in out.stderr, out
    assert not os.listdir(state_root)


def test_a_start_refused_for_another_roots_namesake_leaves_no_record(rootfs, tmp_path):
    """MINIRUN_STATE_ROOT set alone: the other root shares the data root and the cgroup parent.
    Its start of a name whose data directory is this root's live container's is refused,
    and must leave nothing, as a refusal for a name in use does: a record of it kept as
    exited (125) was one `rm` away from destroying the cgroup of that name, the live
    container's, and killing it."""
    name = "shared-root"
    other = {**os.environ, "MINIRUN_STATE_ROOT": str(tmp_path / "other")}
    assert minirun("run", "-d", "--name", name, rootfs, "/bin/sleep", "100").returncode == 0
    try:
        pid = minirun("inspect", name).stdout
        out = minirun("run", "-d", "--name", name, rootfs, "/bin/true", env=other)
        assert out.returncode == 125 and "already in use" in out.stderr and out.stderr.count("\n") == 1, out.stderr
        assert not os.path.lexists(tmp_path / "other" / name), "the refused start left a record"
        minirun("rm", "-f", name, env=other)
        assert minirun("inspect", name).stdout == pid and '"running"' in pid, "another root's rm killed it"
    finally:
        assert minirun("rm", "-f", name).returncode == 0


def test_logs_never_shows_another_roots_namesakes_log(rootfs, tmp_path):
    """Two state roots share the data root: the log there under a name is the data directory
    owner's, not a foreground namesake's of the other root (which has none)."""
    name = "shared-log"
    other = {**os.environ, "MINIRUN_STATE_ROOT": str(tmp_path / "other"),
             "MINIRUN_CGROUP_PARENT": CGROUP_PARENT + "-o"}
    assert minirun("run", "-d", "--name", name, rootfs, "/bin/sh", "-c", "echo secret; exec sleep 100").returncode == 0
    fg = popen_minirun("run", "--name", name, rootfs, "/bin/sleep", "100", env=other)
    try:
        assert wait_for(lambda: minirun("inspect", name, env=other).returncode == 0)
        out = minirun("logs", name, env=other)
        assert out.returncode != 0 and "secret" not in out.stdout and "has no log" in out.stderr, out
    finally:
        fg.terminate()  # forwarded to COMMAND: the run cleans up after itself
        fg.wait()
        assert minirun("rm", "-f", name).returncode == 0
        for parent in glob.glob(f"/sys/fs/cgroup/*/{other['MINIRUN_CGROUP_PARENT']}"):  # the other root's, empty
            os.rmdir(parent)
