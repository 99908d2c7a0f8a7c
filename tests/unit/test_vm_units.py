"""VM companion pieces that need no QEMU: cpio format, argv builders, accel choice, kernel header, CLI checks."""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import sys

import pytest

from minirun.vm import initramfs, kernel, probe, qemu_args
from minirun.vm.errors import AccelUnavailable, KernelNotFound, QemuNotFound, VMTimeout


def test_import_is_cheap():
    code = "import sys, minirun.vm; print('qemu.qmp' in sys.modules, 'asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_cpio_newc_is_readable_by_cpio(tmp_path):
    if not shutil.which("cpio"):
        pytest.skip("cpio not installed")
    buf = io.BytesIO()
    w = initramfs.CpioWriter(buf)
    w.dir("etc")
    w.file("etc/hello", b"hello\n", 0o644)
    w.symlink("etc/link", "hello")
    w.finish()
    data = buf.getvalue()
    assert len(data) % 4 == 0 and data.startswith(b"070701")
    listing = subprocess.run(["cpio", "-it", "--quiet"], input=data, capture_output=True, check=True).stdout
    assert listing.decode().split() == ["etc", "etc/hello", "etc/link"]
    subprocess.run(["cpio", "-id", "--quiet"], input=data, cwd=tmp_path, check=True)
    assert (tmp_path / "etc" / "hello").read_bytes() == b"hello\n"
    assert (tmp_path / "etc" / "link").readlink().name == "hello"


def test_tree_key_follows_content(tmp_path):
    (tmp_path / "a").write_text("1")
    key1 = initramfs.tree_key(str(tmp_path))
    assert initramfs.tree_key(str(tmp_path)) == key1
    (tmp_path / "a").write_text("2")
    assert initramfs.tree_key(str(tmp_path)) != key1


def test_rootfs_image_is_cached_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIRUN_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "x").write_text("x")
    first = initramfs.rootfs_image(str(root))
    assert initramfs.rootfs_image(str(root)) == first
    (root / "bin" / "x").write_text("y")
    assert initramfs.rootfs_image(str(root)) != first


def test_config_encoding_rejects_nul():
    assert initramfs.encode_config([("arg", "a b"), ("env", "X=1")]) == b"arg\0a b\0env\0X=1\0"
    with pytest.raises(ValueError):
        initramfs.encode_config([("arg", "a\0b")])


def test_argv_builders():
    argv = qemu_args.base([], "pc", "tcg")
    assert argv[:2] == ["-nodefaults", "-no-user-config"] and "-no-shutdown" in argv and "-no-reboot" in argv
    assert "-cpu" not in argv
    assert qemu_args.base([], "pc", "kvm")[-4:-2] == ["-cpu", "host"]
    assert qemu_args.quote_optarg("/a,b") == "/a,,b"
    share = qemu_args.share_9p([], "/x,y", readonly=True)
    assert share[1] == "local,id=root,path=/x,,y,security_model=passthrough,multidevs=remap,readonly=on"
    assert "quiet" not in qemu_args.kernel_cmdline(debug=True)
    assert "reboot=t" in qemu_args.kernel_cmdline(machine="microvm")


def test_accel_choice():
    pvm = probe.KvmStatus(False, "/dev/kvm belongs to a PVM host (module kvm_pvm)")
    good = probe.KvmStatus(True, "/dev/kvm is usable")
    assert probe.choose_accel("auto", good).name == "kvm"
    auto = probe.choose_accel("auto", pvm)
    assert auto.name == "tcg" and "PVM" in auto.reason and "TCG" in auto.reason
    assert probe.choose_accel("tcg", good).name == "tcg"
    with pytest.raises(AccelUnavailable):
        probe.choose_accel("bogus", good)


def test_kvm_status_detects_pvm(tmp_path):
    dev = tmp_path / "kvm"
    dev.write_text("")
    (tmp_path / "mod" / "kvm_pvm").mkdir(parents=True)
    status = probe.kvm_status(str(dev), str(tmp_path / "mod"))
    assert not status.usable and "kvm_pvm" in status.reason
    (tmp_path / "mod" / "kvm_pvm").rmdir()
    assert probe.kvm_status(str(dev), str(tmp_path / "mod")).usable
    assert not probe.kvm_status(str(tmp_path / "none"), str(tmp_path / "mod")).usable


def test_find_qemu_missing(monkeypatch, tmp_path):
    monkeypatch.delenv("MINIRUN_QEMU", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(QemuNotFound, match="qemu-system-x86"):
        probe.find_qemu()


def test_bzimage_header(tmp_path):
    head = bytearray(0x4000)
    head[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", head, 0x20E, 0x1000 - 0x200)
    head[0x1000:0x1020] = b"6.1.0-99-test (builder) #1\0"
    struct.pack_into("<I", head, 0x260, 50 << 20)
    path = tmp_path / "vmlinuz"
    path.write_bytes(bytes(head))
    assert kernel.image_release(str(path)) == "6.1.0-99-test"
    assert kernel.image_init_size(str(path)) == 50 << 20
    with pytest.raises(KernelNotFound):
        kernel.from_path(str(tmp_path / "missing"))
    (tmp_path / "junk").write_bytes(b"x" * 1024)
    with pytest.raises(KernelNotFound, match="not an x86 bzImage"):
        kernel.from_path(str(tmp_path / "junk"))


def test_timeout_exit_code():
    assert VMTimeout("x").exit_code == 124


def test_cli_rejects_bad_values():
    from click.testing import CliRunner

    from minirun.vm.cli import vm

    runner = CliRunner()
    res = runner.invoke(vm, ["run", "--cpus", "0.5", "/", "true"])
    assert "whole number of vCPUs" in str(res.exception)
    res = runner.invoke(vm, ["run", "--share-rw", "/", "true"])
    assert "--share-rw needs --share-root" in str(res.exception)
    res = runner.invoke(vm, ["run", "--help"])
    assert res.exit_code == 0 and "--share-root" in res.output


def test_an_extracted_pvh_image_is_reused_without_reading_the_config(tmp_path, monkeypatch):
    (tmp_path / "boot").mkdir()
    vmlinux = tmp_path / "boot" / "vmlinux-6.1.0-99-test"
    vmlinux.write_bytes(b"\x7fELF")
    k = kernel.Kernel(str(tmp_path / "boot" / "vmlinuz-6.1.0-99-test"), "6.1.0-99-test", str(tmp_path))
    monkeypatch.setattr(kernel.Kernel, "config", lambda self: pytest.fail("the config was parsed again"))
    assert kernel.pvh_image(k) == str(vmlinux)


def test_the_cached_guest_init_is_found_without_running_the_compiler(tmp_path, monkeypatch):
    from minirun.vm import guest

    if not shutil.which("gcc"):
        pytest.skip("gcc not installed")
    monkeypatch.setenv("MINIRUN_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "gcc")
    first = guest.init_binary()  # compiles
    monkeypatch.setattr(guest.subprocess, "run", lambda *a, **k: pytest.fail(f"ran {a[0]} for a cached init"))
    assert guest.init_binary() == first


def test_the_host_tsc_from_its_cache_imports_nothing_more(tmp_path):
    with open("/proc/sys/kernel/random/boot_id") as f:
        (tmp_path / "host-tsc-khz").write_text(f"{f.read().strip()} 2300000\n")
    code = (f"import sys; from minirun.vm import probe; khz = probe.host_tsc_khz(cache_dir={str(tmp_path)!r}); "
            "print(khz, 'platform' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["2300000", "False"]


@pytest.mark.parametrize("argv", [
    ["R", "/bin/true"],
    ["--cpus", "2", "-m", "512m", "--accel=tcg", "--timeout", "5", "--json", "R", "sh", "-c", "exit 3"],
    ["-e", "A=1", "--env=B=2", "-w", "/tmp", "-h", "box", "--name", "v1", "--module", "overlay", "R", "ls", "-l"],
    ["--share-root", "/", "--share-rw", "--machine", "pc", "--boot-timeout=9.5", "--debug", "-", "cat", "--json"],
    ["--network", "bridge", "-p", "8080:80", "-v", "/srv:/data:ro", "-v", "/etc:/e", "--kernel", "/k", "R", "x"],
])
def test_vm_run_fast_parse_is_clicks_parse(argv):
    from minirun.runopts import VM_RUN_OPTIONS, parse_fast
    from minirun.vm.cli import run

    with run.make_context("run", list(argv)) as ctx:
        expected = {k: list(v) if isinstance(v, tuple) else v for k, v in ctx.params.items()}
    assert parse_fast(argv, VM_RUN_OPTIONS) == expected


@pytest.mark.parametrize("argv", [["--accel", "bogus", "R", "x"], ["--timeout", "x", "R", "x"], ["--help"],
                                  ["--machine=PC", "R", "x"], ["-m512m", "R", "x"], ["R"]])
def test_vm_run_fast_parse_leaves_click_the_errors_and_the_help(argv):
    from minirun.runopts import VM_RUN_OPTIONS, parse_fast

    assert parse_fast(argv, VM_RUN_OPTIONS) is None


def test_vm_run_starts_without_click(tmp_path):
    """QEMU starts once the options are parsed: importing click first cost ~20 ms of every run."""
    code = ("import atexit, sys; atexit.register(lambda: print(sorted(m for m in ('click', 'minirun.cli') "
            "if m in sys.modules)))\nfrom minirun.entry import main\nmain(['vm', 'run', '--json', '/', '/bin/true'])\n")
    env = dict(os.environ, MINIRUN_QEMU=str(tmp_path / "no-qemu"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 125 and "not found" in out.stderr, out
    assert out.stdout.split() == ["[]"], out
