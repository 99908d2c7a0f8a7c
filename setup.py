# setuptools reads everything from pyproject.toml; cffi_modules is the one
# setting that has no pyproject form: it compiles csrc/ into minirun._native.
# build_ext also links the two static helpers into minirun/libexec/: the
# container's PID 1 (minirun-init) and a detached container's shim (minirun-shim).
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_ext import build_ext

HELPERS = {
    "minirun-init": ["csrc/init_main.c", "csrc/reap.c", "csrc/command.c"],
    "minirun-shim": ["csrc/shim.c", "csrc/relay.c"],
}


class BuildWithHelpers(build_ext):
    def run(self):
        super().run()
        out_dir = os.path.join("minirun" if self.inplace else os.path.join(self.build_lib, "minirun"), "libexec")
        os.makedirs(out_dir, exist_ok=True)
        # musl links them ~20x smaller than glibc's static libc: every container holds a copy of
        # minirun-init in a memfd, so its size is memory per container (make deps installs musl-tools)
        cc = os.environ.get("MINIRUN_STATIC_CC") or shutil.which("musl-gcc") or "gcc"
        for name, sources in HELPERS.items():
            target = os.path.join(out_dir, name)
            # static: PID 1 execs it after pivot_root, where no host library is reachable
            subprocess.run([cc, "-static", "-Os", "-s", "-Wall", "-Wextra", "-Icsrc", "-o", target + ".tmp", *sources],
                           check=True)
            os.replace(target + ".tmp", target)


setup(cffi_modules=["csrc/ffibuild.py:ffibuilder", "csrc/ffibuild.py:seccomp_ffibuilder"],
      cmdclass={"build_ext": BuildWithHelpers})
