"""Play conmon / containerd-shim: a child subreaper that runs `minirun-oci create`,
checks the container process became its child, starts it and reaps it itself.

    python subreaper_harness.py OCI ROOT BUNDLE ID PIDFILE  -> one JSON line on stdout
"""

import ctypes
import json
import os
import subprocess
import sys
import tempfile

PR_SET_CHILD_SUBREAPER = 36


def ppid_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def main() -> None:
    oci, root, bundle, container_id, pid_file = sys.argv[1:]
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    base = [oci, "--root", root]
    with tempfile.TemporaryFile() as err:  # not a pipe: the container keeps it open, as conmon's
        created = subprocess.run(base + ["create", "--bundle", bundle, "--pid-file", pid_file, container_id],
                                 stdout=subprocess.DEVNULL, stderr=err)
        err.seek(0)
        out = {"create_rc": created.returncode, "create_err": err.read().decode()}
    if created.returncode == 0:
        pid = int(open(pid_file).read())
        out.update(pid=pid, parent_is_me=ppid_of(pid) == os.getpid(),
                   state_created=json.loads(subprocess.run(base + ["state", container_id], capture_output=True,
                                                           text=True).stdout)["status"])
        started = subprocess.run(base + ["start", container_id], capture_output=True, text=True)
        out["start_rc"] = started.returncode
        _, status = os.waitpid(pid, 0)  # we are its parent now: the engine reaps PID 1
        out["exit_code"] = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
        out["state_after"] = json.loads(subprocess.run(base + ["state", container_id], capture_output=True,
                                                       text=True).stdout)["status"]
        out["delete_rc"] = subprocess.run(base + ["delete", container_id]).returncode
    print(json.dumps(out))


if __name__ == "__main__":
    main()
