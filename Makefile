# Frond — the entry points users need: run, test, bench, gdb, clean.
#
#   make run      build everything, boot in QEMU with a NIC on a tap in a private network
#                 namespace (root) or user-mode networking, open the kernel console (quit: `quit`)
#   make test     host unit tests + in-QEMU tests (each boots its own QEMU)
#   make bench    benchmarks (figures, never pass/fail)
#   make durability
#                 kill mid-write: QEMU SIGKILLed 100 times during rv6 file writes, each time
#                 fsck and a check on the next boot that every synced write survived
#                 (ITERS=N kills, SEED=S replays a schedule; docs/rv6.md "Kill mid-write")
#   make soak     every workload at once on one Frond under injected faults (root; minutes:
#                 SOAK_SECS=300 SOAK_FAULTS=1500 SOAK_SEED=42; the full campaign is
#                 SOAK_FAULTS=10000 SOAK_SECS=1700, 6 faults/s, under 30 min)
#   make profile BENCH=NAME [ITERS=N] [ANNOTATE=TEXT]
#                 guest instructions per symbol of one in-kernel benchmark (tools/profile)
#   make gdb      boot with QEMU's gdb stub waiting on :1234 and print the gdb command
#   make fuzz [FUZZ_SECS=N] [FUZZ_TARGETS=a,b] [FUZZ_RUNS=N] [FUZZ_JOBS=N]
#                 coverage-guided fuzzing of the host crates with libFuzzer, N seconds per
#                 target (default 60); targets elf,bootfmt,fwd,net,fs,rv6; FUZZ_JOBS
#                 targets at a time (docs/fuzzing.md)
#   make clean    remove build output
#
# APPEND="..." adds to the kernel command line of `run`/`gdb` (e.g. APPEND="log=debug").
# DISK=path.img attaches that raw image to `run` instead of target/frond/disk.img.
# NIC=igb gives `run`/`gdb` QEMU's igb (an Intel 82576, driven by dom-igb) instead of virtio-net.
# Every target runs scripts/setup.sh first, which installs what a fresh machine lacks.

CARGO     ?= cargo
TARGET    := x86_64-unknown-none
KERNEL    := target/$(TARGET)/release/frond-kernel
BOOTMOD   := target/frond/boot.cpio
# Domains are static-pie and build into their own target directory: the kernel adds
# `-C relocation-model=static`, and sharing a directory would rebuild common crates
# every time the flags switch.
DOMAIN_DIR := target/domains/$(TARGET)/release
# Domain binaries (crates under domains/ and drivers/, and the test fixture under
# tests/fixtures/), bundled as domains/<name>.
DOMAINS   := dom-echo dom-relay dom-client dom-hostile dom-faulty dom-virtio-net dom-null-net dom-netstack dom-services dom-forward dom-ixgbe dom-igb dom-virtio-blk dom-membdev dom-fs dom-fsload dom-rv6
# rv6's user programs (crate rv6/user): built with the `user` profile (no debug info: they
# live on the disk, not in the boot module) and copied into /bin of the disk images.
USER_DIR  := target/domains/$(TARGET)/user
USER_PROGS = $(sort $(shell find $(USER_DIR) -maxdepth 1 -type f -perm -u+x ! -name '*.d' 2>/dev/null))
KERNEL_FLAGS := --config 'target.$(TARGET).rustflags=["-C","relocation-model=static"]'

export FROND_KERNEL      := $(abspath $(KERNEL))
export FROND_BOOT_MODULE := $(abspath $(BOOTMOD))
export FROND_DOMAIN_ELF  := $(abspath $(DOMAIN_DIR))/dom-echo
export FROND_USER_DIR    := $(abspath $(USER_DIR))

QEMU_RUN := $(CARGO) run -q -p frond-tests --bin frond-qemu --

.PHONY: all setup build disk run test durability bench soak profile gdb fuzz clean

all: build

setup:
	@scripts/setup.sh

# Bare-metal crates: the kernel and the domains, bundled into one boot module. Host
# crates are the workspace's default-members and build with plain `cargo build`/`cargo test`.
build: setup
	$(CARGO) build --release --target $(TARGET) --target-dir target/domains $(addprefix -p ,$(DOMAINS))
	$(CARGO) build --profile user --target $(TARGET) --target-dir target/domains -p rv6-user
	$(CARGO) build --release -p frond-kernel --target $(TARGET) $(KERNEL_FLAGS)
	@mkdir -p $(dir $(BOOTMOD))
	$(CARGO) run -q -p frond-mkboot -- --kernel $(KERNEL) --out $(BOOTMOD) \
		--add etc/system=domains/system.manifest $(foreach d,$(DOMAINS),--add domains/$(d)=$(DOMAIN_DIR)/$(d))

# The disk `make run` attaches: DISK=path.img attaches any raw image instead (e.g. one made
# by xv6-riscv's own mkfs; rv6 then finds no /bin/init and the monitor keeps the console).
# The default image is made by frond-mkfs (32 MiB, the large-file variant, holding
# README.md, docs/ and rv6's programs in /bin) and kept, with whatever was written to
# it, until a program is rebuilt: then it is made again.
DISK_IMG := target/frond/disk.img
DISK     ?= $(DISK_IMG)

disk: build
	@$(MAKE) -s --no-print-directory $(DISK_IMG)

$(DISK_IMG): $(USER_PROGS)
	@mkdir -p $(dir $@)
	$(CARGO) run -q -p frond-mkfs -- build --large --size 32768 --inodes 2048 $@ README.md docs --into bin $(USER_PROGS) wrongkind=$(DOMAIN_DIR)/dom-echo

run: build $(if $(filter $(DISK_IMG),$(DISK)),disk)
	@$(CARGO) build -q -p frond-tests --bin frond-qemu
	@APPEND="rv6=on $(APPEND)" NIC="$(NIC)" scripts/run.sh target/debug/frond-qemu --disk "$(DISK)"

# The short soak (tests/tests/soak.rs) runs frond-mkfs from target/debug.
test: build
	$(CARGO) build -q -p frond-mkfs
	$(CARGO) test

# `make test` runs the same test with 3 kills. Prints a summary of the figures, also
# left in target/rv6-tests/kill_mid_write/summary.txt.
durability: build
	FROND_DURABILITY_ITERS=$(or $(ITERS),100) $(if $(SEED),FROND_DURABILITY_SEED=$(SEED)) \
		$(CARGO) test -p frond-tests --test rv6 kill_mid_write_keeps_every_synced_write -- --nocapture

# frond-bench finds the packet tools (frond-pktgen, frond-pktcount) next to itself, so all
# of the harness's binaries are built together, in release. FROND_BENCH_ONLY=boot,kbench,
# forward,crash-nic,crash-stack (or net),storage runs only those sections.
bench: build
	$(CARGO) build -q --release -p frond-tests --bins
	$(CARGO) build -q -p frond-mkfs
	$(CARGO) run -q --release -p frond-tests --bin frond-bench

# The soak (tests/src/soak.rs, docs/reliability.md "Soak"): frond-soak finds the packet
# tools next to itself and frond-mkfs in target/debug. Writes target/soak/results.json,
# target/soak/soak.svg and the serial log; exits non-zero if a pass criterion failed.
SOAK_SECS   ?= 300
SOAK_FAULTS ?= 1500
SOAK_SEED   ?= 42
soak: build
	$(CARGO) build -q -p frond-tests --bins
	$(CARGO) build -q -p frond-mkfs
	SOAK_SECS=$(SOAK_SECS) SOAK_FAULTS=$(SOAK_FAULTS) SOAK_SEED=$(SOAK_SEED) target/debug/frond-soak

# Counts every guest instruction of one benchmark's measured region (QEMU's execution log,
# one instruction per block, -icount shift=0) and attributes it to kernel and domain
# symbols; docs/performance.md explains the method and the figures.
profile: build
	@test -n "$(BENCH)" || { echo "usage: make profile BENCH=NAME [ITERS=N] [ANNOTATE=TEXT]"; exit 2; }
	$(CARGO) run -q --release -p frond-profile -- $(BENCH) $(if $(ITERS),--iters $(ITERS)) $(if $(ANNOTATE),--annotate '$(ANNOTATE)')

gdb: build
	@$(CARGO) build -q -p frond-tests --bin frond-qemu
	@APPEND="$(APPEND)" NIC="$(NIC)" scripts/run.sh target/debug/frond-qemu --gdb

# Runs each fuzz target (tests/fuzz, its own cargo workspace) for FUZZ_SECS seconds at
# nice 19, one at a time; prints executions, exec/s, coverage and corpus size per target
# and writes target/fuzz/results.json. FUZZ_RUNS=N also stops a target after N executions.
fuzz: setup
	@FUZZ_SECS="$(FUZZ_SECS)" FUZZ_TARGETS="$(FUZZ_TARGETS)" FUZZ_RUNS="$(FUZZ_RUNS)" FUZZ_JOBS="$(FUZZ_JOBS)" scripts/fuzz.sh

clean:
	$(CARGO) clean
