#!/bin/bash
# A short tour of what a minirun container sees. Run as root:
#   make demo                       (builds everything first)
#   MINIRUN=.venv/bin/minirun scripts/demo.sh /var/lib/minirun/rootfs/busybox
set -euo pipefail

ROOTFS=${1:-${MINIRUN_ROOTFS:-/var/lib/minirun/rootfs/busybox}}
MINIRUN=${MINIRUN:-minirun}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# Echo a command (quoting the arguments that need it), then run it.
show() {
    local a out='$'
    for a in "$@"; do
        if [[ $a =~ ^[A-Za-z0-9_./=:,+-]+$ ]]; then out+=" $a"
        elif [[ $a != *"'"* ]]; then out+=" '$a'"
        else out+=" $(printf '%q' "$a")"; fi
    done
    printf '%s\n' "$out"
    "$@"
}

step "the host: $(hostname), this shell is PID $$"

step "a container: own hostname, PID namespace, cgroup limits, no network but loopback"
# A new PID namespace: minirun's small init is PID 1 there, the shell a low PID after it.
show "$MINIRUN" run --rm --memory 64m --cpus 0.5 --pids-limit 64 --hostname demo "$ROOTFS" \
    /bin/sh -c 'echo "hello from $(hostname), PID $$"; ps; head -3 /proc/self/cgroup; ip addr 2>/dev/null || ifconfig -a'

step "exit codes pass through"
rc=0
show "$MINIRUN" run --rm "$ROOTFS" /bin/sh -c 'exit 3' || rc=$?
echo "exit code: $rc"

step "a command that does not exist: 127"
rc=0
show "$MINIRUN" run --rm "$ROOTFS" /no/such/command || rc=$?
echo "exit code: $rc"

step "over the memory limit: the kernel OOM-kills it, minirun reports 137"
# tail keeps the last 'line' in memory, and /dev/zero has no newlines.
rc=0
show "$MINIRUN" run --rm --memory 32m --memory-swap 32m "$ROOTFS" \
    /bin/sh -c 'head -c 256m /dev/zero | tail -n 1 >/dev/null' || rc=$?
echo "exit code: $rc"

step "a detached web server on a bridge, published on the host's 127.0.0.1:18080"
show "$MINIRUN" run -d --name demo-web --network bridge -p 18080:8080 "$ROOTFS" \
    /bin/sh -c 'mkdir -p /www && echo "hello from a container" > /www/index.html && exec httpd -f -p 8080 -h /www'
trap '"$MINIRUN" rm -f demo-web >/dev/null 2>&1 || true' EXIT
sleep 0.5
show "$MINIRUN" ps
show "$MINIRUN" exec demo-web /bin/sh -c 'ps; ip -4 addr show eth0 | grep inet'
show "$ROOTFS/bin/busybox" wget -qO- http://127.0.0.1:18080/index.html
show "$MINIRUN" stop demo-web
show "$MINIRUN" rm demo-web
