# memabra: `make test` runs the suite, `make run` opens the console, `make cycle` runs one headless cycle,
# `make mutation` (slow; before a release) writes bench/results/mutation.md.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BASE_DIR ?= artifacts
DEMO_TRAJECTORIES ?= 2000

.PHONY: test run cycle bench bench-learners venv clean demo-data mutation

venv: $(STAMP)

# Set-up output goes to stderr, so `make cycle | jq` sees only the cycle's JSON.
$(STAMP): pyproject.toml
	@echo "creating $(VENV) (Python >= 3.11 needed)" >&2
	@$(PYTHON) -m venv $(VENV) >&2
	@$(PY) -m pip install --quiet --upgrade pip >&2
	@$(PY) -m pip install --quiet -e '.[dev,server,console]' >&2
	@touch $(STAMP)

# Two workers (pytest-xdist), each running whole test files, so a module's shared fixtures are built once.
test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile

# Fill the store with demo trajectories the first time, so there is something to learn from.
demo-data: $(STAMP)
	@if [ -z "$$(ls -A $(BASE_DIR)/trajectories 2>/dev/null)" ]; then \
		$(PY) -m memabra.cli --base-dir $(BASE_DIR) --demo-trajectories $(DEMO_TRAJECTORIES) >/dev/null; \
		echo "filled $(BASE_DIR)/ with $(DEMO_TRAJECTORIES) demo trajectories" >&2; \
	fi

cycle: demo-data
	@$(PY) -m memabra.cli --base-dir $(BASE_DIR)

run: demo-data
	$(VENV)/bin/memabra --base-dir $(BASE_DIR)

# The learner benchmarks, then the store, HTTP and engine harnesses (learners, gates and guard take 5-6 minutes each).
bench: bench-learners
	$(PY) -m pip install --quiet -e '.[dask]'
	$(PY) -m bench
	$(PY) -m bench.server
	$(PY) -m bench.engines

# The learner against Vowpal Wabbit on both shipped worlds (true value as a share of the oracle, drift, rewards in
# other units, training speed), the gates' promotion rates and interval coverage, and the guard; needs the bench
# extra (VW).
bench-learners: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m bench.learners
	$(PY) -m bench.reward_units
	$(PY) -m bench.learner_speed
	$(PY) -m bench.gates
	$(PY) -m bench.guard

# Mutation testing of the gates, atomic writes, the lock, seen ids, ingest, importance weighting, the off-policy
# estimators, the guard and the settings file; MODULES="lock ingest" limits it to some of them, MUTATION_CHILDREN
# (default 2) sets how many mutants run at once. Not part of `make test`: about 80 minutes on 2 cores.
MUTATION_CHILDREN ?= 2
MUTATION_STAMP := $(VENV)/.installed-mutation
$(MUTATION_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,mutation]'
	touch $(MUTATION_STAMP)

mutation: $(MUTATION_STAMP)
	$(PY) -m bench.mutation --max-children $(MUTATION_CHILDREN) $(MODULES)

clean:
	rm -rf $(VENV) .pytest_cache mutants
