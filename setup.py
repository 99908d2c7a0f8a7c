# setuptools reads everything from pyproject.toml; cffi_modules is the one
# setting that has no pyproject form: it compiles csrc/ into minirun._native.
# build_ext also links the two static helpers into minirun/libexec/: the
# container's PID 1 (minirun-init) and a detached container's shim (minirun-shim).
# build_scripts links the executables, `minirun` and `minirun-oci` (csrc/front.c),
# in place of console scripts: every install path (wheel, sdist, editable) gets them.
import os
import shutil
import subprocess
import sys
import sysconfig

from setuptools import setup
from setuptools.command.build_ext import build_ext

from distutils.command.build_scripts import build_scripts  # setuptools' own copy, once setuptools is imported

HELPERS = {
    "minirun-init": ["csrc/init_main.c", "csrc/reap.c", "csrc/command.c", "csrc/report.c"],
    "minirun-shim": ["csrc/shim.c", "csrc/relay.c", "csrc/attach.c"],
}


class BuildWithHelpers(build_ext):
    def run(self):
        super().run()
        out_dir = os.path.join("minirun" if self.inplace else os.path.join(self.build_lib, "minirun"), "libexec")
        os.makedirs(out_dir, exist_ok=True)
        for name, sources in HELPERS.items():
            # static: PID 1 execs it after pivot_root, where no host library is reachable
            link_static(os.path.join(out_dir, name), sources)


def link_static(target: str, sources: list[str], defines: tuple[str, ...] = ()) -> None:
    # musl links them ~20x smaller than glibc's static libc: every container holds a copy of
    # minirun-init in a memfd, so its size is memory per container (make deps installs musl-tools)
    cc = os.environ.get("MINIRUN_STATIC_CC") or shutil.which("musl-gcc") or "gcc"
    subprocess.run([cc, "-static", "-Os", "-s", "-Wall", "-Wextra", "-Icsrc", *defines, "-o", target + ".tmp",
                    *sources], check=True)
    os.replace(target + ".tmp", target)


# executable -> (the function it runs, as a console script's entry point; its C sources; its own defines)
FRONTS = {
    "minirun": ("minirun.entry:main", ["csrc/front.c"], []),
    "minirun-oci": ("minirun.oci.main:cli", ["csrc/front.c", "csrc/ociverbs.c"], ["-DFRONT_OCI"]),  # native verbs first
}


class BuildFronts(build_scripts):
    """Link FRONTS into the scripts build directory, which install_scripts (a wheel's
    .data/scripts, an editable wheel's) copies with the executable bits."""

    def get_source_files(self):  # what the sdist carries for them
        return sorted({source for _, sources, _ in FRONTS.values() for source in sources})

    def run(self):
        os.makedirs(self.build_dir, exist_ok=True)
        # static, as the helpers: no dynamic loader runs before the interpreter does
        python = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
        for name, (entry, sources, own) in FRONTS.items():
            defines = (f'-DFRONT_PYVER="{sysconfig.get_python_version()}"', f'-DFRONT_PYTHON="{python}"',
                       f'-DFRONT_ENTRY="{entry}"', *own)
            link_static(os.path.join(self.build_dir, name), sources, defines)


setup(cffi_modules=["csrc/ffibuild.py:ffibuilder", "csrc/ffibuild.py:seccomp_ffibuilder"],
      scripts=list(FRONTS),  # built by BuildFronts, not copied
      cmdclass={"build_ext": BuildWithHelpers, "build_scripts": BuildFronts})
