"""Run the minirun CLI as an unprivileged user (nobody), as tests/integration/test_rootless.py needs.

Started as root: everything minirun may import is imported first (the interpreter
may live where nobody cannot read, e.g. under /root), then the process drops to
nobody and runs `minirun ARGS...`. A process that changed its uids is not
dumpable, unlike a real user's minirun, so that is restored too: the parent must
be able to write its child's /proc/PID/uid_map.
"""

import ctypes
import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

for name in ("difflib", "json", "shutil", "signal", "fcntl", "errno", "stat", "hashlib", "ipaddress", "traceback",
             "minirun.entry", "minirun.cli", "minirun.runverb", "minirun.container", "minirun.spec", "minirun.state",
             "minirun.security", "minirun.syscalls", "minirun.mounts", "minirun.runopts", "minirun.lifecycle",
             "minirun.join", "minirun.cgroups", "minirun.seccomp", "minirun.seccomp_default", "minirun.seccomp_build",
             "minirun._seccomp", "_sha256",
             "minirun.result", "minirun.jsonlite", "minirun.quickexit", "atexit"):
    try:
        importlib.import_module(name)
    except ImportError:
        pass

NOBODY = 65534
os.setgroups([])
os.setgid(NOBODY)
os.setuid(NOBODY)
ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE

# A real user's minirun knows nothing of the test session's places for root (its log root).
os.environ.pop("MINIRUN_LOG_ROOT", None)
import minirun.settings  # noqa: E402  (settings pick the state directory by euid when imported)
import minirun.state  # noqa: E402

importlib.reload(minirun.settings)
importlib.reload(minirun.state)
for module in (sys.modules["minirun.container"], sys.modules["minirun.lifecycle"]):
    module.state = minirun.state
sys.modules["minirun.entry"].main(sys.argv[1:])
