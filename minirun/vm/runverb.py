"""`minirun vm run` once its options are parsed (runopts.parse_fast in entry.py, or click in vm/cli.py):
check them, build the VMSpec, boot, report. Free of click, which a VM run would otherwise wait for
before QEMU could start.

Exit codes and error lines are entry.py's (errors.py has the table).
"""

from __future__ import annotations

import os

from .. import jsonlite as json  # not the json package: ~1.5 ms before QEMU starts (jsonlite.py)


def execute_vm_run(*, rootfs, command, cpus="1", memory="256m", kernel_path=None, accel="auto", timeout=None,
                   boot_timeout=None, share_root=None, share_rw=False, name=None, env=(), workdir="/",
                   hostname="minirun-vm", modules=(), network="none", publish=(), volumes=(), machine="microvm",
                   as_json=False, debug=False) -> int:
    """`minirun vm run` after parsing. Returns the exit code (COMMAND's)."""
    from ..errors import SpecError
    from ..spec import check_hostname, check_id, parse_env, parse_publish, parse_size
    from .runner import DEFAULT_BOOT_TIMEOUT, VMSpec, _stdout_sink, run as vm_run

    try:
        ncpus = int(cpus)
    except ValueError:
        raise SpecError(f"invalid --cpus value {cpus!r}: a VM has a whole number of vCPUs, e.g. 1 or 2") from None
    if ncpus < 1:
        raise SpecError(f"invalid --cpus value {cpus!r}: must be at least 1")
    if share_rw and not share_root:
        raise SpecError("--share-rw needs --share-root DIR")
    if timeout is not None and timeout <= 0:
        raise SpecError(f"invalid --timeout value {timeout:g}: must be greater than 0")
    if network not in ("none", "bridge"):
        raise SpecError(f"invalid --network value {network!r} for a VM: use none or bridge")
    spec = VMSpec(
        rootfs=None if share_root else rootfs,
        args=list(command),
        cpus=ncpus,
        memory=parse_size(memory),
        kernel=kernel_path,
        accel=accel,
        timeout=timeout,
        boot_timeout=boot_timeout or DEFAULT_BOOT_TIMEOUT,
        share_root=share_root,
        share_rw=share_rw,
        env=parse_env(env),
        cwd=workdir,
        hostname=check_hostname(hostname),
        machine=machine,
        modules=tuple(modules),
        network=network,
        publish=[parse_publish(p) for p in publish],
        shares=[parse_share(v) for v in volumes],
        debug=debug,
        id=check_id(name) if name else "",
    )
    last = [b"\n"]
    out = _stdout_sink()

    def sink(chunk: bytes) -> None:
        out(chunk)
        last[0] = chunk[-1:]

    result = vm_run(spec, stdout=sink)
    if as_json:
        # on a line of its own, even when COMMAND's output did not end with one
        print(("" if last[0] == b"\n" else "\n") + json.dumps(result.to_dict()), flush=True)
    return result.exit_code


def parse_share(text: str) -> tuple[str, str, bool]:
    """``HOSTDIR:GUESTDIR[:ro|:rw]`` -> (absolute host dir, guest dir, read-only)."""
    from ..errors import SpecError

    parts = text.split(":")
    ro = False
    if len(parts) == 3 and parts[2] in ("ro", "rw"):
        ro = parts.pop() == "ro"
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise SpecError(f"invalid -v value {text!r}: use HOSTDIR:GUESTDIR[:ro]")
    return os.path.abspath(parts[0]), parts[1], ro
