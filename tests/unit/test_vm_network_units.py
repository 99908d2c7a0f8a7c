"""VM networking and shares: the pure parts (option parsing, QEMU arguments, guest config, boot line)."""

from __future__ import annotations

import os

import pytest

from minirun import cleanup, network, state
from minirun.errors import SpecError
from minirun.vm import initramfs, probe, qemu_args
from minirun.vm.runverb import parse_share
from minirun.vm.runner import VMSpec, _config, _mac, check_shares


def test_parse_share():
    assert parse_share("/srv/data:/data") == ("/srv/data", "/data", False)
    assert parse_share("/srv/data:/data:ro") == ("/srv/data", "/data", True)
    assert parse_share("/srv/data:/data:rw") == ("/srv/data", "/data", False)
    assert parse_share("rel:/data")[0] == os.path.abspath("rel")
    for bad in ("/srv", "/srv:", ":/data", "/a:/b:/c:ro", "/a:/b:maybe"):
        with pytest.raises(SpecError, match="invalid -v value"):
            parse_share(bad)


def test_check_shares(tmp_path):
    check_shares([(str(tmp_path), "/data", False), (str(tmp_path), "/other", True)])
    with pytest.raises(SpecError, match="not a directory"):
        check_shares([(str(tmp_path / "missing"), "/data", False)])
    with pytest.raises(SpecError, match="absolute and not /"):
        check_shares([(str(tmp_path), "data", False)])
    with pytest.raises(SpecError, match="absolute and not /"):
        check_shares([(str(tmp_path), "/", False)])
    with pytest.raises(SpecError, match="already a share's target"):
        check_shares([(str(tmp_path), "/data", False), (str(tmp_path), "/data/", True)])


def test_shares_and_network_reach_the_guest_config():
    spec = VMSpec(rootfs="/r", args=["/bin/true"], shares=[("/h1", "/data", False), ("/h2", "/with space", True)])
    pairs = _config(spec, [])
    assert ("vol", "vol0 0 /data") in pairs and ("vol", "vol1 1 /with space") in pairs
    # the encoding the guest init parses: NUL-separated key, value
    assert b"vol\0vol1 1 /with space\0" in initramfs.encode_config(pairs)


def test_share_9p_and_nic_arguments():
    argv = qemu_args.share_9p([], "/srv/a,b", "vol0", readonly=True)
    assert argv[1] == ("local,id=vol0,path=/srv/a,,b,security_model=passthrough,multidevs=remap,readonly=on")
    assert argv[3] == "virtio-9p-pci,fsdev=vol0,mount_tag=vol0"
    assert qemu_args.nic_tap([], 7, "52:54:00:58:00:05") == [
        "-netdev", "tap,id=net0,fd=7", "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:58:00:05"]
    assert qemu_args.nic_tap([], 7, "m", machine="microvm")[3].startswith("virtio-net-device,")


def test_mac_is_stable_and_locally_administered():
    assert _mac("10.88.0.5") == "52:54:00:58:00:05"
    assert _mac("10.88.1.200") == "52:54:00:58:01:c8"


def test_vm_keys_cannot_collide_with_container_names():
    key = network.vm_key("web")
    assert key == "vm/web" and key.startswith(network.VM_PREFIX)
    assert network.host_ifname(key) != network.host_ifname("web")
    assert len(network.host_ifname(key)) <= 15
    from minirun.spec import check_id

    with pytest.raises(SpecError):
        check_id(key)  # no container can be named like a VM's key


def test_microvm_under_tcg_gets_the_tsc_frequency_on_its_command_line():
    assert "tsc_early_khz=2600000" in qemu_args.kernel_cmdline(machine="microvm", tsc_khz=2600000)
    assert "tsc_early_khz" not in qemu_args.kernel_cmdline(machine="microvm")


def test_host_tsc_khz_is_plausible_and_cached(tmp_path):
    khz = probe.host_tsc_khz(cache_dir=str(tmp_path))
    if khz is None:
        pytest.skip("not x86-64")
    assert 100_000 < khz < 10_000_000  # 100 MHz .. 10 GHz
    cached = (tmp_path / "host-tsc-khz").read_text().split()
    assert int(cached[1]) == khz
    (tmp_path / "host-tsc-khz").write_text(f"{cached[0]} 1234567\n")
    assert probe.host_tsc_khz(cache_dir=str(tmp_path)) == 1234567  # same host boot: the cached value


def test_gc_removes_the_state_of_a_dead_vm_but_not_a_live_one(tmp_path):
    vm_root = str(tmp_path / "minirun-vm")
    with state.claim("alive", {"kind": "vm"}, root=vm_root):
        os.makedirs(os.path.join(vm_root, "dead"))
        open(os.path.join(vm_root, "dead", "lock"), "w").close()  # its owner is gone: nobody holds the lock
        assert cleanup.gc_vms(vm_root) == ["dead"]
        assert sorted(os.listdir(vm_root)) == ["alive"]
    assert os.listdir(vm_root) == []


def test_pvh_image_is_the_kernels_own_elf_and_only_for_cached_kernels(tmp_path):
    from minirun.vm import kernel as kernels

    try:
        cached = kernels.get(flavour="cloud", fetch_missing=False)
    except Exception as err:
        pytest.skip(f"no cached kernel: {err}")
    image = kernels.pvh_image(cached)
    if image is None:
        pytest.skip("this host cannot decompress the kernel's payload (apt-get install lz4)")
    with open(image, "rb") as f:
        assert f.read(4) == b"\x7fELF"
    assert os.path.basename(image) == f"vmlinux-{cached.release}"
    assert kernels.pvh_image(kernels.Kernel(cached.image, cached.release)) is None  # --kernel PATH: its own image
