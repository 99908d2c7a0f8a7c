"""python scripts/have_module.py NAME: exit 0 if module NAME can be imported, 3 if
NAME (or a parent package of it) does not exist; other import errors propagate
(traceback, exit 1). The Makefile uses it to skip targets whose module is not written yet."""

import importlib.util
import sys

name = sys.argv[1]
try:
    spec = importlib.util.find_spec(name)
except ModuleNotFoundError as e:
    parents = {name.rsplit(".", i)[0] for i in range(name.count(".") + 1)}
    if e.name not in parents:
        raise
    spec = None
sys.exit(0 if spec is not None else 3)
