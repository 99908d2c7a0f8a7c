"""``minirun vm ...``: the VM companion's commands (a click group the main CLI loads lazily).

Errors are raised as MiniRunError subclasses; minirun's entry (entry.py) prints them as
one ``minirun: <message>`` line and exits with their code (errors.py's table; 124 for a
timeout). ``python3 -m minirun.vm.cli`` runs ``minirun vm`` through that same entry.
"""

from __future__ import annotations

import json
import os
import sys

import click


@click.group("vm", context_settings={"help_option_names": ["--help"]})
def vm():
    """Boot the same ROOTFS and COMMAND in a QEMU virtual machine (its own kernel)."""


@vm.command("run", context_settings={"allow_interspersed_args": False, "help_option_names": ["--help"]})
@click.option("--cpus", default="1", show_default=True, metavar="N", help="Virtual CPUs (whole number).")
@click.option("-m", "--memory", default="256m", show_default=True, metavar="SIZE",
              help="Guest RAM, reserved up front (a container's --memory is a cap instead).")
@click.option("--kernel", "kernel_path", metavar="PATH",
              help="Guest kernel image (default: the cached Debian kernel, fetched on first use).")
@click.option("--accel", type=click.Choice(["auto", "kvm", "tcg"]), default="auto", show_default=True,
              help="auto: KVM when it can boot a standard kernel, else TCG (the choice is reported).")
@click.option("--timeout", type=float, metavar="SECS", help="Kill the VM after SECS seconds (exit 124).")
@click.option("--boot-timeout", type=float, metavar="SECS", help="Seconds allowed until the guest init runs "
              "(default 60; exit 124 after).")
@click.option("--share-root", metavar="DIR", help="Boot with host DIR as the guest's / over virtio-9p "
              "(read-only) instead of an initramfs of ROOTFS; ROOTFS is then ignored and may be '-'.")
@click.option("--share-rw", is_flag=True, help="Make --share-root writable.")
@click.option("--name", help="VM name (QEMU's -name and the result's id; default vm-<pid>).")
@click.option("-e", "--env", "env", multiple=True, metavar="KEY=VAL", help="Set an environment variable.")
@click.option("-w", "--workdir", default="/", show_default=True, help="Working directory in the guest.")
@click.option("-h", "--hostname", default="minirun-vm", show_default=True, help="Guest hostname.")
@click.option("--module", "modules", multiple=True, metavar="NAME",
              help="Kernel module the guest loads at boot, with its dependencies, from the guest kernel's own "
                   "package (repeatable); module autoloading is off in the guest.")
@click.option("--network", default="none", show_default=True, metavar="none|bridge",
              help="none: no NIC; bridge: a virtio NIC on the containers' minirun0 bridge, with an address from "
                   "the same pool (containers and VMs reach each other and the host, nothing beyond).")
@click.option("-p", "--publish", multiple=True, metavar="[HOSTIP:]HOSTPORT:GUESTPORT",
              help="Publish a guest port on the host's 127.0.0.1, or on HOSTIP alone (needs --network bridge; "
                   "repeatable).")
@click.option("-v", "--volume", "volumes", multiple=True, metavar="HOSTDIR:GUESTDIR[:ro]",
              help="Share a host directory at GUESTDIR over virtio-9p (repeatable); :ro is enforced by the guest "
                   "(read-only mount) and by QEMU. Boots the generic kernel: the cloud kernel has no 9p.")
@click.option("--machine", type=click.Choice(["microvm", "pc"]), default="microvm", show_default=True,
              help="QEMU machine type: microvm (virtio over MMIO, no PCI; boots in ~2/3 of pc's time) or pc.")
@click.option("--json", "as_json", is_flag=True, help="After COMMAND exits, print the result as JSON on stdout.")
@click.option("--debug", is_flag=True, help="Show the kernel's boot messages, the QEMU command and tracebacks.")
@click.argument("rootfs")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(name, cpus, memory, kernel_path, accel, timeout, boot_timeout, share_root, share_rw, env, workdir, hostname,
        modules, network, publish, volumes, machine, as_json, debug, rootfs, command):
    """Boot a VM whose root is ROOTFS, run COMMAND in it, exit with its status.

    COMMAND's output (stdout and stderr share the guest's serial console) appears
    live on stdout.  minirun reports the accelerator on stderr and, with --json,
    the timings (launch to guest init, to COMMAND start, to exit), QEMU's peak
    RSS and the guest kernel version.

    \b
    Examples:
      minirun vm run /var/lib/minirun/rootfs/busybox /bin/uname -r
      minirun vm run --memory 512m --cpus 2 --json ROOTFS /bin/sh -c 'nproc; free -m'
      minirun vm run --share-root / - /bin/cat /proc/self/cgroup   # the host's files, the guest's kernel
      minirun vm run --share-root / --module overlay - minirun run ROOTFS /bin/true   # a container in a VM
      minirun vm run --network bridge -p 8080:80 ROOTFS httpd -f -p 80
      minirun vm run -v /srv/data:/data -v /etc:/host-etc:ro ROOTFS /bin/ls /data
    """
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
        click.echo(("" if last[0] == b"\n" else "\n") + json.dumps(result.to_dict()))
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


@vm.group("kernel")
def kernel():
    """Manage the cached guest kernels."""


@kernel.command("fetch")
@click.option("--flavour", type=click.Choice(["cloud", "generic", "all"]), default="all", show_default=True,
              help="cloud boots faster (default for initramfs boots); generic has 9p (needed by --share-root).")
def kernel_fetch(flavour):
    """Download (apt-get download) and unpack (dpkg -x) the default guest kernel(s) into the cache."""
    from . import kernel as kernels

    for name in kernels.FLAVOURS if flavour == "all" else [flavour]:
        k = kernels.fetch(name)
        click.echo(f"{name}: {k.image}")


def main(argv: list[str] | None = None) -> None:
    """``minirun vm ARGS``, through minirun's one entry (its error contract)."""
    from ..entry import main as entry_main

    entry_main(["vm", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
