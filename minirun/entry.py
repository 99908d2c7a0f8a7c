"""The `minirun` executable: error handling, exit codes, and the fast `run` path.

Every failure ends as one line on stderr (``minirun: ...``) with docker's exit
codes: 125 minirun failed, 126 COMMAND cannot be executed, 127 COMMAND not found,
otherwise COMMAND's own status (128+N for signal N). ``--debug`` adds tracebacks.

A plain `minirun run ...` is parsed without click (see runopts.py); everything
else goes through the click CLI in cli.py.
"""

from __future__ import annotations

import os
import sys

# The signal module wraps these in IntEnums: importing enum (with functools and
# collections) costs ~3.5 ms at every start here; _signal is the same functions.
import _signal as signal

from .errors import MiniRunError


class Terminated(BaseException):
    """SIGTERM/SIGHUP outside a container's run: unwind so cleanup code runs."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum, _frame):
    raise Terminated(signum)


def execute_run(*, rootfs, command, name=None, hostname=None, env=(), workdir="/", user=None, memory=None,
                memory_swap=None, cpus=None, cpuset_cpus=None, pids_limit=None, volume=(), tmpfs=(),
                device=(), read_only=False, no_overlay=False, network="none", publish=(), sysctl=(), cap_add=(),
                cap_drop=(), security_opt=(), privileged=False, userns=False, userns_map=(), interactive=False,
                tty=False, detach=False, rm=False, log_opt=(), as_json=False, debug=False) -> int:
    """`minirun run` after parsing: build the spec, run it, report. Returns the exit code."""
    from . import container
    from .spec import (ContainerSpec, Limits, Process, parse_cpus, parse_cpuset, parse_env, parse_pids_limit,
                       parse_network, parse_publish, parse_size, parse_tmpfs, parse_user, parse_volume)

    if tty and not detach:  # checked first: nothing may be created for a run that cannot start
        from .tty import require_terminal

        require_terminal()
    log_opts = None
    if log_opt or detach:
        from .logfiles import parse_log_opts

        log_opts = parse_log_opts(log_opt)  # checked for a foreground run too (docker does), used by -d
    host_cpus = os.cpu_count() or 1
    uid, gid = parse_user(user) if user else (0, 0)
    swap = None
    if memory_swap is not None:
        swap = -1 if memory_swap.strip() == "-1" else parse_size(memory_swap, "--memory-swap")
    limits = Limits.from_cpus(
        parse_cpus(cpus, host_cpus) if cpus is not None else None,
        memory=parse_size(memory) if memory is not None else None,
        memory_swap=swap,
        pids=parse_pids_limit(pids_limit) if pids_limit is not None else None,
        cpuset_cpus=parse_cpuset(cpuset_cpus, host_cpus) if cpuset_cpus is not None else None,
    )
    nodes = []
    if device or privileged:
        from .devices import ALLOW_ALL, parse_device

        parsed = [parse_device(d) for d in device]
        nodes = [node for node, _ in parsed]
        limits.devices = ALLOW_ALL if privileged else limits.devices + tuple(rule for _, rule in parsed)
    proc_sec, spec_sec = {}, {}
    if cap_add or cap_drop or security_opt or privileged or userns or userns_map:
        from .security import PRIVILEGED_WARNING, options_to_spec

        proc_sec, spec_sec = options_to_spec(cap_add=cap_add, cap_drop=cap_drop, security_opt=security_opt,
                                             privileged=privileged, userns=userns, userns_map=userns_map)
        if privileged:
            print(PRIVILEGED_WARNING, file=sys.stderr)
    spec = ContainerSpec(rootfs=rootfs, id=name or "", hostname=hostname or "",
                         process=Process(args=list(command), env=parse_env(env), cwd=workdir, uid=uid, gid=gid,
                                         terminal=tty, **proc_sec),
                         limits=limits, mounts=[parse_volume(v) for v in volume] + [parse_tmpfs(t) for t in tmpfs],
                         devices=nodes, readonly_root=read_only, overlay=not no_overlay, network=parse_network(network),
                         publish=[parse_publish(p) for p in publish], **spec_sec)
    if sysctl:
        from .sysctl import parse as parse_sysctls

        spec.sysctl = parse_sysctls(sysctl)
    if os.geteuid() != 0 and spec.uid_mappings and os.path.isdir(rootfs) and os.stat(rootfs).st_uid != os.geteuid():
        print("minirun: note: ROOTFS belongs to another user: in a rootless container its files stay read-only "
              "(copy it to make it yours: cp -r ROOTFS ~/rootfs)", file=sys.stderr)
    if spec.network == "host":
        print("minirun: warning: --network host shares the host's network namespace: the container sees and "
              "can bind every host interface", file=sys.stderr)
    if detach:
        from .lifecycle import run_detached

        print(run_detached(spec, auto_remove=rm, tty=tty, log_opts=log_opts), flush=True)
        return 0
    if tty:
        from .tty import Foreground

        with Foreground(interactive) as terminal:
            result = container.run(spec, terminal=terminal)
    else:
        result = container.run(spec)
    if result.leftovers:
        print(f"minirun: warning: container {result.id} left behind: {'; '.join(result.leftovers)} "
              "(`minirun gc` removes it once nothing holds it)", file=sys.stderr)
    if result.oom_killed:
        limit = f" (limit {limits.memory / (1 << 20):g} MiB)" if limits.memory else ""
        who = f"container {result.id} was" if result.exit_code == 137 else f"a process of container {result.id} was"
        print(f"minirun: {who} killed: out of memory{limit}", file=sys.stderr)
    if as_json:
        from .jsonlite import dumps

        print(dumps(result.to_dict()), flush=True)
    return result.exit_code


def guarded(action, debug: bool) -> int:
    """Run ``action()`` and turn every way it can end into an exit code."""
    # Until a container is running (it installs its own forwarding), a SIGTERM
    # unwinds through the cleanup code instead of killing us mid-setup.
    signal.signal(signal.SIGTERM, _raise_terminated)
    signal.signal(signal.SIGHUP, _raise_terminated)
    try:
        code = action()
    except MiniRunError as exc:
        _fail(str(exc), debug)
        code = exc.exit_code
    except KeyboardInterrupt:
        code = 130
    except Terminated as exc:
        code = 128 + exc.signum
    except Exception as exc:  # a bug in minirun: still one line, and --debug for the rest
        _fail(f"internal error: {exc!r} (run with --debug for the traceback)", debug)
        code = 125
    return code if isinstance(code, int) else 0


def _fail(message: str, debug: bool) -> None:
    if debug:
        import traceback

        traceback.print_exc()
    print(f"minirun: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args
    if args[:1] == ["run"]:
        from .runopts import parse_fast

        values = parse_fast(args[1:])
        if values is not None:
            from .quickexit import exit_now

            exit_now(guarded(lambda: execute_run(**values), debug))
    if "site" not in sys.modules:  # started by the launcher (python -I -S): see scripts/launchers.py
        import site

        site.main()
    from .cli import run_click

    sys.exit(guarded(lambda: run_click(args), debug))
