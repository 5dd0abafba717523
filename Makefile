# AetherOS: build, boot and test a Python-PID-1 x86_64 image.
# `make run` and `make test` are the quickstart; see README.md for the rest.

PY      := .venv/bin/python
IMAGES  := out/images
MEM     ?= 512
CPUS    ?= 1
ACCEL   ?= auto
FIRMWARE ?= bios
MODEL   ?=
PYTEST_ARGS ?=
BUILDROOT ?=
BR_OUT  ?= out/buildroot
AGENTS  ?=

SOURCES := $(shell find aether init rootfs kernel-config scripts/aetherbuild board -type f 2>/dev/null | grep -v __pycache__)
# AGENTS="dir1 dir2": agent packages baked into the image (docs/agents.md); the stamp
# changes when the list does, so a new list rebuilds the image.
AGENTS_STAMP := out/build/agents.list
AGENT_FILES := $(if $(AGENTS),$(shell find $(AGENTS) -type f 2>/dev/null | grep -v __pycache__))
$(shell mkdir -p out/build; echo '$(AGENTS)' | cmp -s - $(AGENTS_STAMP) || echo '$(AGENTS)' > $(AGENTS_STAMP))

.PHONY: all deps kernel image rootfs disk run run-disk test test-fast test-vm bench \
	check-kernel-repro buildroot-image clean distclean help

all: image

help:
	@echo "make run        build what is missing, boot the image in QEMU (Ctrl-A X leaves)"
	@echo "make run MODEL=local  the same, with a local model server (SmolLM2) as aether.llm.*"
	@echo "make test       install what is needed, build, run every test (unit, host, VM)"
	@echo "make test-fast  unit and host tests only (no image, no VM)"
	@echo "make bench      boot-time, size and memory figures (out/bench/)"
	@echo "make image      kernel + initramfs + manifest under out/images/ (AGENTS=\"dir ...\": bake packages in)"
	@echo "make disk       out/images/disk.img (BIOS+UEFI GPT disk, dd-able) and disk.qcow2"
	@echo "make run-disk   boot a copy of disk.img in QEMU (FIRMWARE=uefi for OVMF)"
	@echo "make check-kernel-repro  build the kernel again from scratch and compare"
	@echo "make buildroot-image BUILDROOT=/path/to/buildroot  the same disk from source"
	@echo "make deps       Debian packages, the .venv the build and tests use, the model server"
	@echo "variables: MEM=$(MEM) (MiB) CPUS=$(CPUS) ACCEL=$(ACCEL) (auto|kvm|tcg) FIRMWARE=$(FIRMWARE) (bios|uefi)"

# Always checked (cheap when nothing is missing), so a fresh machine gets everything.
deps:
	@scripts/setup-host

kernel: | deps
	$(PY) scripts/build-image kernel

image: $(IMAGES)/.built
$(IMAGES)/.built: $(SOURCES) $(AGENT_FILES) $(AGENTS_STAMP) Makefile requirements.txt | deps
	$(PY) scripts/build-image all --agents "$(AGENTS)"
	@touch $@

# The disk is made from what `image` staged (out/build/rootfs/tree) and published.
disk: $(IMAGES)/disk.img
$(IMAGES)/disk.img: $(IMAGES)/.built
	$(PY) scripts/build-image disk

run: image
	$(PY) scripts/run-qemu --memory $(MEM) --cpus $(CPUS) --accel $(ACCEL) $(if $(MODEL),--model $(MODEL))

# Boots a fresh copy (out/run/disk-copy.img): the built image stays as it was built.
run-disk: disk
	$(PY) scripts/run-qemu --disk $(IMAGES)/disk.img --firmware $(FIRMWARE) \
		--memory $(MEM) --cpus $(CPUS) --accel $(ACCEL)

test: image disk
	AETHER_REQUIRE_IMAGE=1 AETHER_REQUIRE_MODEL=1 $(PY) -m pytest $(PYTEST_ARGS) tests examples

test-fast: deps
	$(PY) -m pytest $(PYTEST_ARGS) -m "not vm" tests examples

test-vm: image disk
	AETHER_REQUIRE_IMAGE=1 $(PY) -m pytest $(PYTEST_ARGS) -m vm tests

# About 6 minutes of CPU: a second, clean kernel build compared with the cached one.
check-kernel-repro: | deps
	$(PY) scripts/check-kernel-repro

# Everything from source with Buildroot (needs its downloads: not possible offline).
buildroot-image:
	@test -n "$(BUILDROOT)" || { echo "usage: make buildroot-image BUILDROOT=/path/to/buildroot [BR_OUT=$(BR_OUT)]" >&2; exit 2; }
	$(MAKE) -C $(BUILDROOT) O=$(abspath $(BR_OUT)) BR2_EXTERNAL=$(abspath board) aether_x86_64_defconfig
	$(MAKE) -C $(BUILDROOT) O=$(abspath $(BR_OUT)) all
	@echo "disk image: $(BR_OUT)/images/disk.img"

bench: image disk
	$(PY) scripts/bench --disk
	$(PY) scripts/bench-agents
	$(PY) scripts/bench-ctx
	$(PY) scripts/bench-shell
	$(PY) scripts/bench-llm
	$(PY) scripts/bench-think

clean:
	rm -rf out

distclean: clean
	rm -rf .venv .venv-model

# Model broker benchmark against the real local server (interactive wait with priority and
# fifo, broker overhead, throughput at concurrency 1/2/4): out/bench/llm.json
.PHONY: bench-llm
bench-llm: deps
	$(PY) scripts/bench-llm

# Context store benchmark (durable appends, window latency at 10k/100k/1M items): out/bench/ctx.json
.PHONY: bench-ctx
bench-ctx: deps
	$(PY) scripts/bench-ctx
