"""The CRI lane: containerd's CRI plugin, as kubelet drives it, with a `runc` and a `minirun`
handler (RuntimeClass handlers; both containerd-shim-runc-v2, BinaryName runc or minirun-oci)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # criclient, crienv, pod

import crienv  # noqa: E402
from criclient import Cri, generate_stubs, wait_for  # noqa: E402
from helpers import IS_ROOT  # noqa: E402
from isolation import hold_engine_lane  # noqa: E402
from pod import Pod  # noqa: E402

OCI = os.path.join(os.path.dirname(sys.executable), "minirun-oci")
NEEDS = ("containerd", "containerd-shim-runc-v2", "ctr", "runc", "musl-gcc", "iptables")


def _missing() -> list[str]:
    missing = [tool for tool in NEEDS if not shutil.which(tool)]
    missing += [] if os.path.exists("/usr/lib/cni/bridge") else ["containernetworking-plugins"]
    try:
        import grpc  # noqa: F401
        import grpc_tools  # noqa: F401
    except ImportError:
        missing.append("grpcio/grpcio-tools (the test extra)")
    return missing


# module scope: containerd and its bridge go once the lane's tests are done, not at the end of
# a whole-suite session
@pytest.fixture(scope="module")
def containerd(tmp_path_factory, rootfs):
    if not IS_ROOT:
        pytest.skip("needs root")
    if _missing():
        pytest.skip(f"missing: {', '.join(_missing())} (make deps venv)")
    base = str(tmp_path_factory.mktemp("cri"))
    release_lane = hold_engine_lane()  # its CNI bridge and cgroups have host-wide names
    made_run_dir = not os.path.exists("/run/containerd")  # the shims' sockets go under it
    engine = None
    try:
        archives = crienv.build_images(base, rootfs)
        crienv.make_bridge()
        engine = crienv.Containerd(base, {"runc": shutil.which("runc"), "minirun": OCI})
        for archive in archives:
            engine.import_image(archive)
        yield engine
    finally:
        if engine is not None:
            engine.stop()
            if os.environ.get("MINIRUN_CRI_LOG"):  # containerd's own log, kept to read after a failure
                shutil.copy(f"{base}/containerd.log", os.environ["MINIRUN_CRI_LOG"])
        for pid in crienv.shims(base):  # only ones that named our containerd's socket
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        crienv.unmount_under(base)
        crienv.delete_bridge()
        crienv.remove_cgroups()
        if made_run_dir:
            crienv.remove_empty_dirs("/run/containerd")
        crienv.clean_dir(base)
        release_lane()


@pytest.fixture(scope="module")
def cri(containerd, tmp_path_factory):
    pb, rpc = generate_stubs(str(tmp_path_factory.mktemp("cri-stubs")))
    client = Cri(containerd.sock, pb, rpc)
    for image in (crienv.PAUSE_IMAGE, crienv.BUSYBOX_IMAGE):
        assert client.images.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=image))).image.id, image
    yield client
    import grpc

    try:
        for sandbox in client.ListPodSandbox().items:  # what a failed test's own cleanup missed
            client.StopPodSandbox(pod_sandbox_id=sandbox.id)
            client.RemovePodSandbox(pod_sandbox_id=sandbox.id)
    except grpc.RpcError:
        pass  # the containerd fixture's cleanup takes what is left; the failed test already reported it
    client.close()


@pytest.fixture(params=crienv.HANDLERS)
def handler(request) -> str:
    return request.param


@pytest.fixture
def pods(cri, containerd, handler):
    """pods(name, **options) runs a pod on this test's handler; all are removed afterwards, and then
    nothing of theirs may remain on the host."""
    before = crienv.leftovers(containerd.base)
    made: list[Pod] = []

    def make(name: str, **options) -> Pod:
        pod = Pod(cri, handler, name, f"{containerd.base}/logs", **options)
        made.append(pod)
        return pod

    yield make
    errors = []
    for pod in made:  # every pod, even after one fails to go
        try:
            pod.remove()
        except Exception as err:  # noqa: BLE001 (reported below)
            errors.append(err)
    if errors:
        raise errors[0]
    left = []

    def clean() -> bool:
        left[:] = [item for item in crienv.leftovers(containerd.base) if item not in before]
        return not left

    try:
        wait_for("the pods' leftovers to go", clean, timeout=10)
    except AssertionError:
        pass
    assert not left, f"left behind: {left}"
