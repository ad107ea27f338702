# Thin wrapper: the two quick-start commands and a few conveniences.
#   make demo   bootstrap, build, run the demo
#   make test   bootstrap, build, run every test
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
# More randomized Raft seeds: make test RAFT_SEEDS=5000
RAFT_SEEDS ?=
# make sim-long: this many simulator seeds of 60 simulated seconds on 5
# nodes (and half as many on 3), from SIM_FIRST_SEED.
SIM_SEEDS ?= 2000
SIM_FIRST_SEED ?= 1

.PHONY: all bootstrap configure build test demo bench compare sim-long clean

all: build

bootstrap:
	@scripts/bootstrap

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

configure: $(BUILD_DIR)/build.ninja

build: bootstrap configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	cd $(BUILD_DIR) && SYNOD_RAFT_SEEDS=$(RAFT_SEEDS) ctest --output-on-failure -j $(JOBS)

demo: build
	$(BUILD_DIR)/src/cli/synod demo

bench: build
	$(BUILD_DIR)/bench/raft_bench

# Synod beside etcd and Redis on this machine; writes bench/RESULTS.md.
COMPARE_DURATION ?= 10
compare: build
	bench/compare --duration $(COMPARE_DURATION)

# Thousands of simulator seeds with every fault class (docs/simulator.md).
sim-long: build
	$(BUILD_DIR)/src/cli/synod sim --seeds $(SIM_SEEDS) --first-seed $(SIM_FIRST_SEED) --nodes 5 --duration 60
	$(BUILD_DIR)/src/cli/synod sim --seeds $$(( $(SIM_SEEDS) / 2 )) --first-seed $(SIM_FIRST_SEED) --nodes 3 --duration 60

clean:
	rm -rf $(BUILD_DIR)
