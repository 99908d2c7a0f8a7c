# setuptools reads everything from pyproject.toml; cffi_modules is the one
# setting that has no pyproject form: it compiles csrc/ into minirun._native.
from setuptools import setup

setup(cffi_modules=["csrc/ffibuild.py:ffibuilder", "csrc/ffibuild.py:seccomp_ffibuilder"])
