"""OCI hooks (config.md "POSIX-platform Hooks"): each runs with the container's state
as JSON on its stdin, in the runtime's namespaces.

    prestart, createRuntime   during `create`, once the namespaces exist; a failure
                              fails the create (and removes the container)
    poststart                 after `start` released the process; a failure is a warning
    poststop                  during `delete`; a failure is a warning

createContainer and startContainer run in the container's namespaces, so the
container's own process runs them, in C (csrc/hooks.c): see runtime.create.
"""

from __future__ import annotations

import json
import subprocess

from ..errors import SetupError


def run(kind: str, hooks: list[dict], state: dict, *, fatal: bool, warn=None) -> None:
    data = json.dumps(state).encode()
    for hook in hooks:
        args = hook.get("args") or [hook["path"]]
        env = hook.get("env")  # none: the runtime's own environment (runc: exec.Cmd with a nil Env)
        timeout = hook.get("timeout")
        try:
            proc = subprocess.run(args, executable=hook["path"], input=data,
                                  env=None if env is None else dict(_pairs(env)),
                                  capture_output=True, timeout=timeout if timeout and timeout > 0 else None)
            failure = None if proc.returncode == 0 else (
                f"exit status {proc.returncode}: {proc.stderr.decode(errors='replace').strip()}")
        except subprocess.TimeoutExpired:
            failure = f"timed out after {timeout} s"
        except OSError as err:
            failure = err.strerror
        if failure is None:
            continue
        message = f"{kind} hook {hook['path']}: {failure}"
        if fatal:
            raise SetupError(f"{kind} hook", 0, message)
        if warn:
            warn(message)


def _pairs(env: list[str]):
    for item in env:
        key, _, value = item.partition("=")
        yield key, value
