"""`minirun run` once its options are parsed (runopts.parse_fast, or click in cli.py):
check them, build the spec, run it in the foreground or detached, report.

Exit codes and error lines are entry.py's (errors.py has the table).
"""

from __future__ import annotations

import os
import sys

from .errors import warning_line

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
            print(warning_line(PRIVILEGED_WARNING, "minirun"), file=sys.stderr)
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
        print(warning_line("--network host shares the host's network namespace: the container sees and "
                           "can bind every host interface", "minirun"), file=sys.stderr)
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
        print(warning_line(f"container {result.id} left behind: {'; '.join(result.leftovers)} "
                           "(`minirun gc` removes it once nothing holds it)", "minirun"), file=sys.stderr)
    if result.oom_killed:
        limit = f" (limit {limits.memory / (1 << 20):g} MiB)" if limits.memory else ""
        who = f"container {result.id} was" if result.exit_code == 137 else f"a process of container {result.id} was"
        print(f"minirun: {who} killed: out of memory{limit}", file=sys.stderr)
    if as_json:
        from .jsonlite import dumps

        print(dumps(result.to_dict()), flush=True)
    return result.exit_code
