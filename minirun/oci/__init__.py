"""minirun-oci: runc's command line over minirun's one core.

    main.py     the command line (hand-rolled; the hot verbs' native front parses it too)
    log.py      errors to stderr and to --log, as text or runc's JSON lines (csrc/ocilog.c)
    bundle.py   config.json -> ContainerSpec (minirun/spec.py) + the OCI-only extras
    store.py    the state directory <root>/<id>: state.json, the exec fifo, status
    runtime.py  create/run/exec/pause/resume/update, through container.py's checks,
                syscalls.spawn, the cgroup drivers and security.py; start/kill/delete/ps
                are csrc/ociverbs.c's (minirun/ociverbs.py), as the native front runs them
    hooks.py    OCI hooks, the container's state on their stdin (csrc/hooks.c's runner)
    defaults.py `spec`'s config.json and `features`

The process model is the OCI one: process.args is the container's PID 1 (the C
child execs it instead of forking it under minirun-init), and between `create` and
`start` it waits before execve, blocked opening the exec fifo.
"""
