# The two commands of the README's quickstart are `make demo` and `make test`; both run `setup` first.
.PHONY: setup demo gameday test test-quick test-containers test-netns test-fuzz lint generate bench down clean

setup:
	@bash scripts/setup.sh

# demo: one order walked through the shop, then the quick gameday (plans/quick.yaml) on the same lab.
demo: setup
	.venv/bin/chaoslab demo && .venv/bin/chaoslab gameday --plan quick

gameday: setup
	.venv/bin/chaoslab gameday --plan quick

# test: the whole suite in two stages (scripts/test.sh says which, and why); CHAOSLAB_TEST_STAGES=0 runs it in one.
test: setup
	bash scripts/test.sh

test-quick: setup
	.venv/bin/pytest -m quick -q

# The compose stack in podman (root; part of `make test` too): images built here, the compose experiments run in it.
test-containers: setup
	.venv/bin/pytest -m containers tests/containers

# The isolated lab and the faults below the application (root; part of make test too).
test-netns: setup
	.venv/bin/pytest -m netns

# Schemathesis against a lab of its own, deeper than in `make test` (which runs 15 examples per operation).
test-fuzz: setup
	CHAOSLAB_FUZZ_EXAMPLES=200 CHAOSLAB_FUZZ_JOURNEYS=100 .venv/bin/pytest -m fuzz tests/security

lint: setup
	.venv/bin/ruff check .

generate: setup
	.venv/bin/python -m chaoslab.observability.generate
	.venv/bin/python k8s/generate.py
	.venv/bin/python -m services.openapi
	.venv/bin/python -m chaoslab.chaos.reference

bench: setup
	.venv/bin/python bench/startup_memory.py

down:
	-.venv/bin/chaoslab down

clean: down
	rm -rf .chaoslab runs
