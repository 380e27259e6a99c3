# pgolf — the two commands:
#   make run    set up, build, prepare the default data, train recipes/default.json on the CPU
#   make test   set up, build, prepare the default data, run the whole test suite through ctest
# `make build` does the set-up and build alone (binaries in build/bin/).
BUILD ?= build
JOBS  ?= $(shell nproc)
RECIPE ?= recipes/default.json
CMAKE_GENERATOR := $(shell command -v ninja >/dev/null 2>&1 && echo Ninja || echo "Unix Makefiles")

.PHONY: setup configure build data run test clean

setup:
	@bash scripts/setup.sh

configure: setup
	@cmake -S . -B $(BUILD) -G "$(CMAKE_GENERATOR)" -DCMAKE_BUILD_TYPE=Release >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

data: build
	@PGOLF_BIN=$(BUILD)/bin bash scripts/default_data.sh

run: data
	@$(BUILD)/bin/trainer --recipe $(RECIPE)

test: data
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 1200

clean:
	rm -rf $(BUILD)
