# Thin wrapper: the two quick-start commands and a few conveniences.
#   make demo   bootstrap, build, run the demo
#   make test   bootstrap, build, run every test
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
# More randomized Raft seeds: make test RAFT_SEEDS=5000
RAFT_SEEDS ?=

.PHONY: all bootstrap configure build test demo bench clean

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

clean:
	rm -rf $(BUILD_DIR)
