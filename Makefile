# ehr - the two commands: `make run` and `make test`. The real build is Meson.
PORT ?= 8080
DB ?= var/ehr.db
BUILD := build
TESTBUILD := build-asan

.PHONY: all deps build run test unit api e2e bench clean format check-format

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=release -Db_ndebug=true

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

run: build
	@mkdir -p var
	./$(BUILD)/ehr demo --db $(DB)
	./$(BUILD)/ehr serve --port $(PORT) --db $(DB)

$(TESTBUILD)/build.ninja:
	meson setup $(TESTBUILD) --buildtype=debug -Db_sanitize=address,undefined -Dwerror=true

# Sanitizer build, unit tests, then black-box tests against a real server,
# then the clinician app in a real browser (tests/e2e, screenshots in
# build-e2e/screenshots).
test: deps $(TESTBUILD)/build.ninja check-format
	ninja -C $(TESTBUILD)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		meson test -C $(TESTBUILD) --print-errorlogs
	EHR_BIN=$(CURDIR)/$(TESTBUILD)/ehr ./tests/run-api.sh
	EHR_BIN=$(CURDIR)/$(TESTBUILD)/ehr ./tests/run-e2e.sh

e2e: deps $(TESTBUILD)/build.ninja
	ninja -C $(TESTBUILD)
	EHR_BIN=$(CURDIR)/$(TESTBUILD)/ehr ./tests/run-e2e.sh

bench: build
	./bench/run.sh

format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'bench/*.c')

check-format:
	clang-format --dry-run -Werror $$(git ls-files 'src/*.c' 'src/*.h')

clean:
	rm -rf $(BUILD) $(TESTBUILD)
