# Grove: `make demo` sets everything up and deploys the seed's app on the local test bed;
# `make test` sets everything up and runs the whole test suite.
SHELL := /bin/bash
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
PYTEST_ARGS ?=

.PHONY: setup demo test bench lint sanity unit integration molecule testbed-up testbed-down clean

setup:
	./scripts/setup.sh

demo: setup
	./scripts/demo.sh

lint: setup
	ruff check .
	ansible-lint
	shellcheck scripts/*.sh .ci/run

sanity: setup
	./scripts/sanity.sh

unit: setup
	python -m pytest -m "not testbed" $(PYTEST_ARGS)

integration: setup
	python -m pytest -m testbed $(PYTEST_ARGS)

test: setup lint sanity
	python -m pytest --durations=15 $(PYTEST_ARGS)

# Figures next to their same-run baselines; writes docs/benchmarks.md (~15 min). Not part of
# `make test`. The test bed benchmarks take /run/lock/grove-testbed.lock themselves (a lock held
# by `flock /run/lock/grove-testbed.lock make bench` is used as it is) and leave the test bed down.
bench: setup
	python -m benchmarks.run

testbed-up: setup
	grove testbed up

testbed-down: setup
	grove testbed down

clean: testbed-down
	rm -rf .pytest_cache .ruff_cache .hypothesis
