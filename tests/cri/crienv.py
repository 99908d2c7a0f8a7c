"""containerd's CRI plugin on private paths, as a Kubernetes node runs it: two runtime handlers
(`runc` and `minirun`, both through containerd-shim-runc-v2), a locally built pause image and
busybox image, a CNI bridge of its own; and what it may leave on the host, to check it left none."""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import platform
import shutil
import signal
import subprocess
import tarfile
import time

from helpers import processes_with

NAMESPACE = "k8s.io"  # the containerd namespace CRI keeps its images and containers in
PAUSE_IMAGE = "localhost/minirun-pause:1"
BUSYBOX_IMAGE = "localhost/minirun-busybox:1"
BRIDGE = "cri-mrt0"  # not "mr*": that is minirun's own, watched by the integration leak check
SUBNET, GATEWAY = "10.77.19.0/24", "10.77.19.1"  # clear of minirun0 (10.88.0.0/24) and podman's 10.88/16, 10.89.x
CGROUP_PARENT = "minirun-cri-test"  # every pod's cgroup_parent lives under it
NETWORK = "minirun-cri-test"  # the CNI network's name
HANDLERS = ("runc", "minirun")
HERE = os.path.dirname(os.path.abspath(__file__))
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


# ---------------------------------------------------------------- images


def _tar(entries, empty_dirs: dict[str, int] | None = None) -> bytes:
    """An uncompressed layer from (arcname, path) pairs (directories recursively) and empty directories."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for arcname, path in entries:
            t.add(path, arcname=arcname)
        for arcname, mode in (empty_dirs or {}).items():
            info = tarfile.TarInfo(arcname)
            info.type, info.mode = tarfile.DIRTYPE, mode
            t.addfile(info)
    return buf.getvalue()


def oci_archive(path: str, name: str, layer: bytes, cmd: list[str]) -> None:
    """An OCI image layout tarball holding one single-layer image, as `ctr images import` reads it."""
    blobs: dict[str, bytes] = {}

    def blob(data: bytes, media_type: str) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    config = {"architecture": ARCH, "os": "linux",
              "config": {"Cmd": cmd, "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
              "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer).hexdigest()}"]}}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": blob(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json"),
                "layers": [blob(layer, "application/vnd.oci.image.layer.v1.tar")]}
    descriptor = blob(json.dumps(manifest).encode(), manifest["mediaType"])
    descriptor["platform"] = {"architecture": ARCH, "os": "linux"}
    descriptor["annotations"] = {"io.containerd.image.name": name,
                                 "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]}
    index = {"schemaVersion": 2, "manifests": [descriptor]}
    with tarfile.open(path, "w") as t:
        def add(arcname: str, data: bytes) -> None:
            info = tarfile.TarInfo(arcname)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))

        add("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        add("index.json", json.dumps(index).encode())
        for digest, data in blobs.items():
            add(f"blobs/sha256/{digest}", data)


def build_images(workdir: str, rootfs: str) -> list[str]:
    """The pause image (tests/cri/pause.c, static with musl) and busybox from ``rootfs``: archive paths."""
    pause = os.path.join(workdir, "pause")
    subprocess.run(["musl-gcc", "-static", "-O2", "-o", pause, os.path.join(HERE, "pause.c")], check=True)
    os.chmod(pause, 0o755)
    pause_tar = os.path.join(workdir, "pause-oci.tar")
    oci_archive(pause_tar, PAUSE_IMAGE, _tar([("pause", pause)]), ["/pause"])
    # the image's own directories only: other tests write scratch files into the shared rootfs
    dirs = [d for d in ("bin", "sbin", "usr", "etc") if os.path.isdir(os.path.join(rootfs, d))]
    busybox_tar = os.path.join(workdir, "busybox-oci.tar")
    layer = _tar([(d, os.path.join(rootfs, d)) for d in dirs], {"tmp": 0o1777, "root": 0o700, "var": 0o755})
    oci_archive(busybox_tar, BUSYBOX_IMAGE, layer, ["/bin/sh"])
    return [pause_tar, busybox_tar]


# ---------------------------------------------------------------- containerd


def cni_config(base: str) -> dict:
    # No NAT anywhere (ipMasq false), no forwarding: isGateway would give the bridge the gateway
    # address and turn on net.ipv4.ip_forward host-wide, so make_bridge gives it the address
    # instead (the host reaches the pods on the link; the pods have no route beyond it).
    # host-local keeps its leases under our directory.
    return {"cniVersion": "1.0.0", "name": NETWORK, "plugins": [{
        "type": "bridge", "bridge": BRIDGE, "isGateway": False, "ipMasq": False,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY}]],
                 "dataDir": f"{base}/ipam"}}]}


def containerd_config(base: str, binaries: dict[str, str]) -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    lines = [
        "version = 2", f'root = "{base}/root"', f'state = "{base}/state"',
        "[grpc]", f'  address = "{base}/containerd.sock"',
        "[ttrpc]", f'  address = "{base}/containerd.sock.ttrpc"',
        "[debug]", '  address = ""', "[metrics]", '  address = ""',
        '[plugins."io.containerd.internal.v1.opt"]', f'  path = "{base}/opt"',
        f"[{cri}]", f'  sandbox_image = "{PAUSE_IMAGE}"',
        # the sandbox asks for oomScoreAdj -998; this host's bounding set lacks CAP_SYS_RESOURCE
        "  restrict_oom_score_adj = true",
        "  netns_mounts_under_state_dir = true",  # pods' netns files under our state, not /run/netns
        '  stream_server_address = "127.0.0.1"', '  stream_server_port = "0"',
        f"[{cri}.cni]", '  bin_dir = "/usr/lib/cni"', f'  conf_dir = "{base}/cni"',
        f"[{cri}.containerd]", '  default_runtime_name = "runc"', '  snapshotter = "overlayfs"',
    ]
    for handler, binary in binaries.items():
        lines += [f"[{cri}.containerd.runtimes.{handler}]", '  runtime_type = "io.containerd.runc.v2"',
                  f"[{cri}.containerd.runtimes.{handler}.options]", f'  BinaryName = "{binary}"',
                  f'  Root = "{base}/{handler}"', "  SystemdCgroup = false"]
    return "\n".join(lines) + "\n"


class Containerd:
    def __init__(self, base: str, binaries: dict[str, str]):
        self.base, self.sock = base, f"{base}/containerd.sock"
        os.makedirs(f"{base}/cni")
        with open(f"{base}/cni/10-minirun-cri-test.conflist", "w") as f:
            json.dump(cni_config(base), f)
        with open(f"{base}/config.toml", "w") as f:
            f.write(containerd_config(base, binaries))
        self.log = open(f"{base}/containerd.log", "w")
        self.proc = subprocess.Popen(["containerd", "-c", f"{base}/config.toml"], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while self.ctr("version").returncode != 0:
            assert time.monotonic() < deadline and self.proc.poll() is None, \
                f"containerd did not start: see {base}/containerd.log"
            time.sleep(0.1)

    def ctr(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ctr", "-a", self.sock, "-n", NAMESPACE, *args], capture_output=True, text=True,
                              timeout=120)

    def import_image(self, archive: str) -> None:
        out = self.ctr("images", "import", archive)
        assert out.returncode == 0, out.stderr

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------- what a pod may leave behind


def shims(base: str) -> list[int]:
    """containerd-shim-runc-v2 processes of this containerd (they daemonize away from it)."""
    sock = f"{base}/containerd.sock".encode()
    return processes_with(lambda argv: argv[0].endswith(b"containerd-shim-runc-v2") and sock in argv)


def iptables_cni_chains() -> list[str]:
    """Rules CNI made for this network (its comments name it; its subnet, its bridge): none with
    ipMasq false and no portmap, and none may stay. Other engines' CNI rules are not ours."""
    marks = (NETWORK, SUBNET.rsplit(".", 1)[0] + ".", BRIDGE)
    found = []
    for table in ("filter", "nat"):
        out = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True)
        found += [f"{table}: {line}" for line in out.stdout.splitlines() if any(m in line for m in marks)]
    return found


def leftovers(base: str) -> list[str]:
    """netns, veths on our bridge, CNI iptables chains, container cgroups, mounts, shims, IP leases,
    runtime state."""
    found = [f"netns {p}" for p in glob.glob(f"{base}/state/io.containerd.grpc.v1.cri/netns/*")]
    found += [f"veth {v}" for v in os.listdir(f"/sys/class/net/{BRIDGE}/brif")] \
        if os.path.isdir(f"/sys/class/net/{BRIDGE}/brif") else []
    found += iptables_cni_chains()
    # pods' cgroups (/CGROUP_PARENT/POD) may stay as runc leaves parents; containers' (…/POD/ID) may not
    found += [f"cgroup {d}" for d in glob.glob(f"/sys/fs/cgroup/*/{CGROUP_PARENT}/*/*") if os.path.isdir(d)]
    with open("/proc/self/mountinfo") as f:
        found += [f"mount {line.split()[4]}" for line in f
                  if line.split()[4].startswith(base) and "/io.containerd." in line.split()[4]
                  and not line.split()[4].endswith("/io.containerd.grpc.v1.cri/netns")]
    found += [f"shim {pid}" for pid in shims(base)]
    found += [f"lease {p}" for p in glob.glob(f"{base}/ipam/*/10.*")]
    # each handler's runtime state (options.Root, per containerd namespace): `delete` removes it
    found += [f"state {p}" for handler in HANDLERS for p in glob.glob(f"{base}/{handler}/{NAMESPACE}/*")]
    return found


def remove_cgroups() -> None:
    """The pods' parents under CGROUP_PARENT, deepest first (rmdir: only empty cgroups go); a
    container process that outlived its shim (a failed run) is killed first: it is ours, in our cgroup."""
    for procs in glob.glob(f"/sys/fs/cgroup/*/{CGROUP_PARENT}/**/cgroup.procs", recursive=True):
        with open(procs) as f:
            for pid in f.read().split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
    deadline = time.monotonic() + 10
    while any(open(p).read() for p in glob.glob(f"/sys/fs/cgroup/pids/{CGROUP_PARENT}/**/cgroup.procs",
                                                     recursive=True)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for parent in glob.glob(f"/sys/fs/cgroup/*/{CGROUP_PARENT}"):
        remove_empty_dirs(parent)


def unmount_under(base: str) -> None:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f if line.split()[4].startswith(base + "/")]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def make_bridge() -> None:
    """The pods' bridge, with the gateway address on it; the bridge plugin plugs veths into it."""
    delete_bridge()  # a crashed run's
    address = f"{GATEWAY}/{SUBNET.split('/')[1]}"
    for cmd in (["ip", "link", "add", BRIDGE, "type", "bridge"], ["ip", "addr", "add", address, "dev", BRIDGE],
                ["ip", "link", "set", BRIDGE, "up"]):
        subprocess.run(cmd, check=True, capture_output=True)


def delete_bridge() -> None:
    if os.path.exists(f"/sys/class/net/{BRIDGE}"):
        subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True)


def remove_empty_dirs(top: str) -> None:
    if os.path.isdir(top):
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def clean_dir(base: str) -> None:
    unmount_under(base)
    shutil.rmtree(base, ignore_errors=True)
