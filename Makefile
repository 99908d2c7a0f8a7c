# minirun: build, test and demo on a Debian 12 / Ubuntu host, as root.
#
#   apt-get update && apt-get install -y make && make test
#
# Every target is idempotent and cheap when its work is already done.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# The distribution's interpreter, which python3-venv and python3-dev below are for, when there is one:
# Debian's build (profile-guided, libpython linked in) starts `minirun run` ~2 ms faster than an
# --enable-shared build such as pyenv's, first on PATH on some machines. `make PYTHON=...` picks another.
PYTHON  ?= $(if $(wildcard /usr/bin/python3),/usr/bin/python3,python3)
ROOTFS  ?= /var/lib/minirun/rootfs/busybox
VENV    := .venv
VPY     := $(VENV)/bin/python
CACHE   := .cache

# Host packages: DEPS_PACKAGES is everything the tests and benchmarks use (engines, QEMU,
# peers); DEMO_PACKAGES, a subset, is what one container needs (the venv and its C
# helpers, the busybox rootfs, a bridge, kmod to load overlay/veth/bridge): all that
# `make demo` installs. Each stamp is keyed on its list: editing one re-runs its install.
DEPS_PACKAGES := busybox-static runc qemu-system-x86 python3-venv python3-dev \
                 gcc libc6-dev libffi-dev make cpio kmod iproute2 procps util-linux \
                 ca-certificates libcap-dev libseccomp-dev musl-tools vagrant vagrant-libvirt lz4 podman containerd \
                 iptables crun docker.io containernetworking-plugins
DEPS_KEY   := $(shell printf '%s\n' $(sort $(DEPS_PACKAGES)) | md5sum | cut -c1-12)
DEPS_STAMP := $(CACHE)/deps-$(DEPS_KEY).stamp
DEMO_PACKAGES := busybox-static python3-venv python3-dev gcc libc6-dev libffi-dev make \
                 ca-certificates libcap-dev libseccomp-dev musl-tools iproute2 iptables procps util-linux kmod
$(if $(filter-out $(DEPS_PACKAGES),$(DEMO_PACKAGES)),$(error DEMO_PACKAGES not in DEPS_PACKAGES: $(filter-out $(DEPS_PACKAGES),$(DEMO_PACKAGES))))
DEMO_KEY   := $(shell printf '%s\n' $(sort $(DEMO_PACKAGES)) | md5sum | cut -c1-12)
DEMO_STAMP := $(CACHE)/demo-$(DEMO_KEY).stamp
VENV_STAMP := $(VENV)/.minirun-installed

export DEBIAN_FRONTEND := noninteractive

.PHONY: help deps demo-deps venv rootfs kernel test test-fast demo bench bench-quick bench-report clean

help:
	@echo "make deps    install host packages with apt-get (root): all the tests need"
	@echo "make demo-deps  only what one container needs (all make demo installs)"
	@echo "make venv    $(VENV) with minirun installed editable, plus test extras"
	@echo "make rootfs  build the busybox rootfs in ROOTFS=$(ROOTFS)"
	@echo "make kernel  fetch the kernel the QEMU VM companion boots"
	@echo "make test    all of the above, then pytest"
	@echo "make test-fast  the same without the slow lanes (pytest -m 'not slow', about two minutes)"
	@echo "make demo    run a container with limits and show what it sees"
	@echo "make bench   every benchmark beside its peers (runc, crun, engines, QEMU), then docs/performance.md"
	@echo "make bench-quick  the same with few rounds (a minute or two)"
	@echo "make bench-report  docs/performance.md from benchmarks/results/ only"
	@echo "make clean   remove $(VENV), build output and stamps (not the rootfs)"

# ---------------------------------------------------------------- deps

deps: $(DEPS_STAMP)
demo-deps: $(DEMO_STAMP)

$(DEPS_STAMP): PACKAGES := $(DEPS_PACKAGES)
$(DEMO_STAMP): PACKAGES := $(DEMO_PACKAGES)

# Install only what of PACKAGES is missing; `apt-get update` only when lists are absent or
# the install fails (stale lists give 404s). No package's postinst may start its
# service (docker.io's dockerd would take over the host's iptables and FORWARD
# policy; the tests start their own daemons on private paths): a policy-rc.d that
# denies every start is in place during the install, if the host has none.
$(DEPS_STAMP) $(DEMO_STAMP):
	@missing=""; \
	for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${db:Status-Abbrev}' "$$p" 2>/dev/null | grep -q '^ii' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  command -v apt-get >/dev/null || { echo "deps: apt-get not found; minirun's Makefile targets Debian/Ubuntu" >&2; exit 1; }; \
	  [ "$$(id -u)" = 0 ] || { echo "deps: missing packages:$$missing; run 'make deps' as root" >&2; exit 1; }; \
	  echo "deps: installing$$missing"; \
	  if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d; \
	    trap 'rm -f /usr/sbin/policy-rc.d' EXIT; \
	  fi; \
	  if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then apt-get update; fi; \
	  apt-get install -y --no-install-recommends $$missing \
	    || { echo "deps: install failed; running apt-get update and retrying"; apt-get update && apt-get install -y --no-install-recommends $$missing; }; \
	fi
	@mkdir -p $(CACHE) && rm -f $(CACHE)/$(firstword $(subst -, ,$(notdir $@)))-*.stamp && touch $@
	@echo "deps: ok"

# ---------------------------------------------------------------- venv

venv: $(VENV_STAMP)

# `python3 -m venv` needs python3-venv (ensurepip); a half-made .venv is removed.
$(VPY): | $(DEMO_STAMP)
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }

# `pip install -e` also compiles the cffi extension and the executables (setup.py),
# so the stamp depends on csrc/ as well as the packaging files (and on oci/defaults.py,
# whose features() the native minirun-oci prints: csrc/ffibuild.py).
# editable_mode=compat puts the checkout on sys.path with a .pth line, which the
# executables (csrc/front.c) read; the default mode's import finder costs ~8 ms at
# every start, and the executables then take the slower way, with site.
$(VENV_STAMP): $(VPY) pyproject.toml setup.py $(wildcard csrc/*.c csrc/*.h csrc/*.py) minirun/oci/defaults.py
	$(VPY) -m pip install -e '.[test]' --config-settings editable_mode=compat
	@touch $@

# ---------------------------------------------------------------- rootfs, kernel

# Always runs: a finished rootfs is checked and left alone in ~0.1 s.
rootfs: $(VENV_STAMP) $(DEMO_STAMP)
	$(VPY) -m minirun.rootfs $(ROOTFS)

# Skipped (exit 0) only while minirun/vm/kernel.py does not exist; any other
# import problem or a failed fetch fails the target.
kernel: $(VENV_STAMP)
	@rc=0; $(VPY) scripts/have_module.py minirun.vm.kernel || rc=$$?; \
	if [ $$rc = 0 ]; then \
	  echo "$(VPY) -m minirun.vm.kernel fetch"; \
	  $(VPY) -m minirun.vm.kernel fetch; \
	elif [ $$rc = 3 ]; then \
	  echo "kernel: minirun.vm.kernel does not exist yet; skipping"; \
	else \
	  exit $$rc; \
	fi

# ---------------------------------------------------------------- test, demo, bench

# pytest exits 5 when it collects no tests; that fails this target like any other failure.
test: deps venv rootfs kernel
	MINIRUN_ROOTFS=$(ROOTFS) $(VPY) -m pytest tests -v

# The developer's lane: everything but the tests marked slow (pyproject.toml's markers).
test-fast: deps venv rootfs kernel
	MINIRUN_ROOTFS=$(ROOTFS) $(VPY) -m pytest tests -m "not slow"

demo: demo-deps venv rootfs
	MINIRUN=$(VENV)/bin/minirun bash scripts/demo.sh $(ROOTFS)

# Each bench writes benchmarks/results/NAME.json; report.py renders docs/performance.md from them
# (benchmarks/performance.md.in holds the prose). bench-quick: the same with few rounds.
# bench_vm.py's boot-option survey (--only explore, ~10 min of TCG boots) is not on the page: run it by hand.
BENCH_ENV := MINIRUN_ROOTFS=$(ROOTFS)
bench: deps venv rootfs kernel
	$(BENCH_ENV) $(VPY) benchmarks/bench_startup.py
	$(BENCH_ENV) $(VPY) benchmarks/bench_run.py
	$(BENCH_ENV) $(VPY) benchmarks/bench_oci.py
	$(BENCH_ENV) $(VPY) benchmarks/bench_seccomp.py
	$(BENCH_ENV) $(VPY) benchmarks/bench_idle.py
	$(BENCH_ENV) $(VPY) benchmarks/bench_vm.py -n 21 --only overhead
	$(VPY) benchmarks/report.py

bench-quick: deps venv rootfs kernel
	$(BENCH_ENV) $(VPY) benchmarks/bench_startup.py --runs 10
	$(BENCH_ENV) $(VPY) benchmarks/bench_run.py --runs 5
	$(BENCH_ENV) $(VPY) benchmarks/bench_oci.py --runs 5 --engine-runs 3
	$(BENCH_ENV) $(VPY) benchmarks/bench_seccomp.py --rounds 3 --calls 1000000
	$(BENCH_ENV) $(VPY) benchmarks/bench_idle.py --containers 2
	$(BENCH_ENV) $(VPY) benchmarks/bench_vm.py -n 1 --only overhead
	$(VPY) benchmarks/report.py

bench-report:
	$(PYTHON) benchmarks/report.py

# ---------------------------------------------------------------- clean

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
	rm -f minirun/_native.c minirun/_native.o minirun/_native*.so
	rm -rf minirun/libexec
	rm -f $(CACHE)/*.stamp
	find . -name __pycache__ -type d -not -path './.git/*' -prune -exec rm -rf {} +
