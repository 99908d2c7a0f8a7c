"""python3 -m minirun.rootfs [DEST] [--download | --installed] [--busybox PATH] [-q]

Builds the busybox rootfs without the CLI (the Makefile uses this).
Progress goes to stderr, the rootfs path to stdout; failures print one
``minirun: ...`` line and exit 125 (like the CLI).
"""

from __future__ import annotations

import argparse
import sys

from minirun.errors import MiniRunError

from . import DEFAULT_ROOTFS
from .builder import build


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m minirun.rootfs",
                                description="Build the busybox root filesystem minirun runs containers in.")
    p.add_argument("dest", nargs="?", default=DEFAULT_ROOTFS, help=f"directory to build (default {DEFAULT_ROOTFS})")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--download", dest="source", action="store_const", const="download",
                     help="take busybox from 'apt-get download busybox-static' even if the package is installed")
    src.add_argument("--installed", dest="source", action="store_const", const="installed",
                     help="only use the installed busybox-static package")
    p.add_argument("--busybox", metavar="PATH", help="use this static busybox binary instead of the package")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    args = p.parse_args(argv)

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        path = build(args.dest, progress=None if args.quiet else progress, source=args.source, busybox=args.busybox)
    except MiniRunError as e:
        print(f"minirun: {e}", file=sys.stderr)
        return e.exit_code
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
