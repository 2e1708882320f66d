# Two commands for a fresh machine: `make demo` and `make test`. Both install into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: on this machine it is the CPU build on local disk; an
	# unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet --disable-pip-version-check --no-cache-dir torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check --no-cache-dir -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/rankwright demo

# Most tests wait on agents and runs more than they compute: two pytest-xdist workers.
# The tests on real Slurm and Ray engines run after, alone (beside another worker's load
# Ray's job starts slowed down past what the chaos test allows).
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup -m "not cluster"
	$(BIN)/python -m pytest -q -m cluster

# Benchmarks (against FuxiCTR; the agent's wake; the hypothesis engine; whole campaigns; a portfolio; the head-to-head
# against Optuna, `rankwright bench`); not part of the
# test suite. See benchmarks/README.md.
bench: install
	bash benchmarks/setup_bench_env.sh
	.venv-bench/bin/python benchmarks/bench_ranking.py
	$(BIN)/python benchmarks/bench_wake.py
	$(BIN)/python benchmarks/bench_hypotheses.py
	$(BIN)/python benchmarks/bench_campaigns.py
	$(BIN)/python benchmarks/bench_faults.py
	$(BIN)/python benchmarks/bench_portfolio.py
	$(BIN)/rankwright bench
	$(BIN)/rankwright bench --memory

clean:
	rm -rf $(VENV) .venv-bench .rankwright .pytest_cache
