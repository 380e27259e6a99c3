# pgolf — the two commands:
#   make run    set up, build, prepare the default data, train recipes/default.json on the CPU, and write
#               its loss-curve PNG into the run directory (RUN_DIR=... to choose it)
#   make test   set up, build, prepare the default data, run the test suite through ctest (make test-bundle: the bundle build)
# `make build` does the set-up and build alone (binaries in build/bin/).
BUILD ?= build
JOBS  ?= $(shell nproc)
RECIPE ?= recipes/default.json
CMAKE_GENERATOR := $(shell command -v ninja >/dev/null 2>&1 && echo Ninja || echo "Unix Makefiles")

.PHONY: setup configure build data run test test-bundle clean

setup:
	@bash scripts/setup.sh

configure: setup
	@cmake -S . -B $(BUILD) -G "$(CMAKE_GENERATOR)" -DCMAKE_BUILD_TYPE=Release >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

data: build
	@PGOLF_BIN=$(BUILD)/bin bash scripts/default_data.sh

RUN_STAMP := $(shell date +%Y%m%d-%H%M%S)
RUN_DIR ?= runs/$(basename $(notdir $(RECIPE)))-$(RUN_STAMP)
run: data
	@$(BUILD)/bin/trainer --recipe $(RECIPE) --out $(RUN_DIR)
	@rc=0; $(BUILD)/bin/pgolf-report $(RUN_DIR) --plot $(RUN_DIR)/loss_curve.png || rc=$$?; \
	if [ $$rc -eq 0 ]; then echo "loss curve: $(RUN_DIR)/loss_curve.png"; \
	elif [ $$rc -eq 3 ]; then echo "warning: no loss curve (matplotlib missing; run scripts/setup.sh)"; \
	else exit $$rc; fi

test: data
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 1200 -LE bundle

# The exported minimal code bundle of the default recipe, built on its own and trained 2 steps (a full -O0
# compile of the bundle: 15-20 minutes on 2 cores, so not part of `make test`).
test-bundle: data
	@cd $(BUILD) && ctest --output-on-failure -L bundle

clean:
	rm -rf $(BUILD)
