"""The lane's own pieces, without containerd: the image archives, the configs, the subnet."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import tarfile

import pytest

import crienv
from minirun import network


def test_subnet_clear_of_minirun0_and_podman():
    ours = ipaddress.ip_network(crienv.SUBNET)
    for other in (network.SUBNET, "10.88.0.0/16", "10.89.0.0/16", "172.17.0.0/16"):  # minirun0, podman, docker0
        assert not ours.overlaps(ipaddress.ip_network(other)), other
    assert ipaddress.ip_address(crienv.GATEWAY) in ours
    assert not crienv.BRIDGE.startswith("mr")  # minirun's own links: the integration leak check watches them


def test_oci_archive_is_a_consistent_image_layout(tmp_path):
    layer = crienv._tar([], {"tmp": 0o1777})
    path = tmp_path / "image.tar"
    crienv.oci_archive(str(path), "localhost/x:7", layer, ["/x"])
    with tarfile.open(path) as t:
        files = {m.name: t.extractfile(m).read() for m in t.getmembers()}

    def blob(descriptor: dict) -> bytes:
        data = files["blobs/sha256/" + descriptor["digest"].split(":")[1]]
        assert len(data) == descriptor["size"] and hashlib.sha256(data).hexdigest() in descriptor["digest"]
        return data

    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    (entry,) = json.loads(files["index.json"])["manifests"]
    assert entry["annotations"]["io.containerd.image.name"] == "localhost/x:7"
    manifest = json.loads(blob(entry))
    config = json.loads(blob(manifest["config"]))
    assert blob(manifest["layers"][0]) == layer
    assert config["rootfs"]["diff_ids"] == [f"sha256:{hashlib.sha256(layer).hexdigest()}"]
    assert config["config"]["Cmd"] == ["/x"]


def test_containerd_config_has_both_handlers_on_private_paths():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11
    config = tomllib.loads(crienv.containerd_config("/B", {"runc": "/usr/sbin/runc", "minirun": "/v/minirun-oci"}))
    assert (config["root"], config["state"], config["grpc"]["address"]) == ("/B/root", "/B/state", "/B/containerd.sock")
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] and cri["cni"]["conf_dir"] == "/B/cni"
    for handler, binary in (("runc", "/usr/sbin/runc"), ("minirun", "/v/minirun-oci")):
        entry = cri["containerd"]["runtimes"][handler]
        assert entry["runtime_type"] == "io.containerd.runc.v2"
        assert entry["options"] == {"BinaryName": binary, "Root": f"/B/{handler}", "SystemdCgroup": False}
    (bridge,) = crienv.cni_config("/B")["plugins"]
    assert (bridge["bridge"], bridge["ipam"]["dataDir"]) == (crienv.BRIDGE, "/B/ipam")
    assert not bridge["ipMasq"] and not bridge["isGateway"]  # no NAT, and no host-wide ip_forward
