"""Bad input to minirun-oci: one `minirun-oci: ` line on stderr, the same message in the
--log file (JSON lines, as containerd reads it), a non-zero exit, nothing left behind."""

from __future__ import annotations

import json
import os

import pytest

from conftest import write_config
from helpers import wait_for


def _config(path: str) -> dict:
    with open(os.path.join(path, "config.json")) as f:
        return json.load(f)


def _break(kind: str, path: str, tmp_path) -> str:
    """Spoil the bundle at ``path`` one way; return the bundle to pass."""
    config = _config(path)
    if kind == "no bundle":
        return str(tmp_path / "nowhere")
    if kind == "no config.json":
        os.unlink(os.path.join(path, "config.json"))
        return path
    if kind == "invalid JSON":
        with open(os.path.join(path, "config.json"), "w") as f:
            f.write('{"ociVersion": "1.0.2", ')
        return path
    if kind == "ociVersion 2":
        config["ociVersion"] = "2.0.0"
    elif kind == "unknown namespace":
        config["linux"]["namespaces"].append({"type": "bogus"})
    elif kind == "relative root outside the bundle":
        config["root"]["path"] = "../../"
    elif kind == "unsupported resource":
        config["linux"]["resources"]["rdma"] = {"mlx5_1": {"hcaHandles": 3}}
    elif kind == "rlimit above the hard limit":
        config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1 << 30, "hard": 1 << 30}]
    elif kind == "terminal":
        config["process"]["terminal"] = True
    elif kind == "negative gid":
        config["process"]["user"]["additionalGids"] = [-1]
    elif kind == "uid beyond uint32":
        config["process"]["user"]["uid"] = 1 << 32
    write_config(path, config)
    return path


EXPECTED = {
    "no bundle": "no such directory",
    "no config.json": "no config.json",
    "invalid JSON": "invalid JSON",
    "ociVersion 2": "ociVersion '2.0.0': unsupported",
    "unknown namespace": "unknown namespace type 'bogus'",
    "relative root outside the bundle": "root.path '../../': a relative root must be inside the bundle",
    "unsupported resource": "linux.resources.rdma",
    "rlimit above the hard limit": "process.rlimits RLIMIT_NOFILE",
    "terminal": "a terminal needs --console-socket",
    # runc's JSON type (uint32): before, an internal error (OverflowError)
    "negative gid": "process.user.additionalGids[] -1: must be an integer from 0 to 4294967295",
    "uid beyond uint32": "process.user.uid 4294967296: must be an integer from 0 to 4294967295",
}


@pytest.mark.parametrize("kind", list(EXPECTED))
@pytest.mark.parametrize("verb", ["create", "run"])
def test_bad_bundle(kind, verb, tmp_path, bundle, oci):
    path = _break(kind, bundle(["/bin/true"]), tmp_path)
    out = oci(verb, "--bundle", path, "bad")
    assert out.returncode == 1, out.stderr  # runc: every error exits 1 (minirun/errors.py's table)
    assert out.stderr.startswith("minirun-oci: ") and EXPECTED[kind] in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert any(EXPECTED[kind] in msg for msg in oci.log_errors())
    assert not os.path.exists(os.path.join(oci.root, "bad"))


@pytest.mark.parametrize("bad_id", ["a/b", "..", ".", "../escape", ""])
def test_bad_ids(bad_id, bundle, oci):
    out = oci("create", "--bundle", bundle(["/bin/true"]), bad_id)
    assert out.returncode != 0 and "invalid container id" in out.stderr
    assert not os.path.isdir(oci.root) or os.listdir(oci.root) == []


def test_duplicate_id(bundle, oci):
    path = bundle(["/bin/sleep", "60"])
    assert oci("create", "--bundle", path, "dup").returncode == 0
    try:
        out = oci("create", "--bundle", path, "dup")
        assert out.returncode != 0 and "already exists" in out.stderr
        assert oci.state("dup")["status"] == "created"  # the first one is untouched
    finally:
        assert oci("delete", "dup").returncode == 0  # a created container needs no --force


def test_verbs_on_missing_and_stopped(bundle, oci):
    for args in (["start", "ghost"], ["state", "ghost"], ["kill", "ghost"], ["delete", "ghost"]):
        out = oci(*args)
        assert out.returncode == 1 and "does not exist" in out.stderr, args
    assert oci("delete", "--force", "ghost").returncode == 0  # as runc: nothing to do
    path = bundle(["/bin/true"])
    assert oci("run", "-d", "--bundle", path, "done").returncode == 0
    assert wait_for(lambda: oci.state("done")["status"] == "stopped", 30)
    assert oci("kill", "done", "TERM").returncode != 0
    assert oci("start", "done").returncode != 0
    assert oci("delete", "done").returncode == 0


def test_missing_command_is_127(bundle, oci):
    out = oci("run", "--bundle", bundle(["/no/such/command"]), "nocmd")
    assert out.returncode == 127 and "no such file or directory" in out.stderr


@pytest.mark.parametrize("args, code, message", [
    (["nosuchcmd"], 127, 'exec: "nosuchcmd": executable file not found in $PATH'),
    (["/no/such"], 127, 'exec: "/no/such": stat /no/such: no such file or directory'),
    (["/etc/passwd"], 126, 'exec: "/etc/passwd": permission denied'),
    (["/bin"], 126, 'exec: "/bin": permission denied'),
])
def test_create_fails_when_the_command_is_missing(bundle, oci, args, code, message):
    """runc looks process.args[0] up (Go's exec.LookPath, in the container's PATH) before
    create returns: engines report it at create, docker as exit 127 or 126 by these words."""
    out = oci("create", "--bundle", bundle(args), "nocmd")
    assert out.returncode == code and message in out.stderr, out.stderr
    assert message in oci.log_errors()[-1]
    assert oci("state", "nocmd").returncode != 0  # nothing recorded, no process waiting


def test_create_finds_the_command_in_the_containers_path(bundle, oci):
    path = bundle(["busybox", "true"])
    config = _config(path)
    config["process"]["env"] = ["PATH=/nowhere:/bin"]
    write_config(path, config)
    assert oci("create", "--bundle", path, "found").returncode == 0
    assert oci("delete", "--force", "found").returncode == 0


def test_usage_errors(oci):
    assert oci("frobnicate").returncode == 1
    out = oci("create", "--bogus-flag", "x")
    assert out.returncode == 1 and "unknown option" in out.stderr
    assert oci("--log-format", "yaml", "list").returncode == 1


def test_warnings_have_one_format(bundle, oci):
    """A warning is `minirun-oci: warning: ...` on stderr (the same shape as minirun's) and a
    level=warning record in the --log file; the verb still succeeds."""
    path = bundle(["/bin/true"])
    config = _config(path)
    config["process"]["apparmorProfile"] = "docker-default"
    write_config(path, config)
    out = oci("create", "--bundle", path, "warned")
    try:
        assert out.returncode == 0, out.stderr
        assert out.stderr.startswith("minirun-oci: warning: process.apparmorProfile"), out.stderr
        with open(oci.log) as f:
            records = [json.loads(line) for line in f]
        assert any(r["level"] == "warning" and r["msg"].startswith("process.apparmorProfile") for r in records)
    finally:
        assert oci("delete", "--force", "warned").returncode == 0


def test_exec_errors_are_255_as_runc(bundle, oci):
    """runc's exec.go exits 255 when the exec itself failed, so a caller tells it from the
    process's status; a COMMAND that cannot be found keeps 127 (errors.py's table)."""
    assert oci("run", "-d", "--bundle", bundle(["/bin/sleep", "60"]), "ex255").returncode == 0
    try:
        out = oci("exec", "--cwd", "relative/dir", "ex255", "/bin/true")
        assert out.returncode == 255 and out.stderr.startswith("minirun-oci: "), out.stderr
        assert "Traceback" not in out.stderr
        assert oci("exec", "ex255", "/no/such").returncode == 127
    finally:
        assert oci("delete", "--force", "ex255").returncode == 0
