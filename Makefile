# AetherOS: build, boot and test a Python-PID-1 x86_64 image.
# `make run` and `make test` are the quickstart; see README.md for the rest.

PY      := .venv/bin/python
IMAGES  := out/images
MEM     ?= 512
CPUS    ?= 1
ACCEL   ?= auto
PYTEST_ARGS ?=

SOURCES := $(shell find aether init rootfs kernel-config scripts/aetherbuild board -type f 2>/dev/null | grep -v __pycache__)

.PHONY: all deps kernel image rootfs run test test-fast test-vm bench clean distclean help

all: image

help:
	@echo "make run        build what is missing, boot the image in QEMU (Ctrl-A X leaves)"
	@echo "make test       install what is needed, build, run every test (unit, host, VM)"
	@echo "make test-fast  unit and host tests only (no image, no VM)"
	@echo "make bench      boot-time, size and memory figures (out/bench/)"
	@echo "make image      kernel + initramfs + manifest under out/images/"
	@echo "make deps       Debian packages and the .venv the build and tests use"
	@echo "variables: MEM=$(MEM) (MiB) CPUS=$(CPUS) ACCEL=$(ACCEL) (auto|kvm|tcg)"

# Always checked (cheap when nothing is missing), so a fresh machine gets everything.
deps:
	@scripts/setup-host

kernel: | deps
	$(PY) scripts/build-image kernel

image: $(IMAGES)/.built
$(IMAGES)/.built: $(SOURCES) Makefile requirements.txt | deps
	$(PY) scripts/build-image all
	@touch $@

run: image
	$(PY) scripts/run-qemu --memory $(MEM) --cpus $(CPUS) --accel $(ACCEL)

test: image
	AETHER_REQUIRE_IMAGE=1 $(PY) -m pytest $(PYTEST_ARGS) tests

test-fast: deps
	$(PY) -m pytest $(PYTEST_ARGS) -m "not vm" tests

test-vm: image
	AETHER_REQUIRE_IMAGE=1 $(PY) -m pytest $(PYTEST_ARGS) -m vm tests

bench: image
	$(PY) scripts/bench

clean:
	rm -rf out

distclean: clean
	rm -rf .venv
