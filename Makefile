# The two commands a fresh machine needs: `make demo` and `make test`.
PYTHON      ?= python3
VENV        ?= .venv
CONSTRAINTS ?= constraints.txt
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.auditkit-installed
DEMO_OUT    ?= reports/demo
PIP_FLAGS   := --disable-pip-version-check --no-input $(if $(CONSTRAINTS),-c $(CONSTRAINTS))

.PHONY: demo test lint bench fuzz clean-venv

$(STAMP): pyproject.toml setup.py $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) --quiet --upgrade pip
	$(BIN)/python -m pip install $(PIP_FLAGS) --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/auditkit demo --out $(DEMO_OUT) --force
	@echo "Demo outputs are in $(DEMO_OUT)/ (report: $(DEMO_OUT)/audit/report.pdf)"

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Opt-in: atheris over the policy, config, results and manifest readers, FUZZ_SECONDS each.
FUZZ_SECONDS ?= 60
fuzz: $(STAMP)
	$(BIN)/python -m pip install $(PIP_FLAGS) --quiet -e '.[fuzz]'
	mkdir -p .fuzz
	for t in policy config results manifest; do \
		$(BIN)/python tests/fuzz/fuzz_readers.py $$t -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 \
			-artifact_prefix=.fuzz/$$t- > .fuzz/$$t.log 2>&1 || { tail -25 .fuzz/$$t.log; exit 1; }; \
		echo "fuzz $$t: $$(grep -h '^Done' .fuzz/$$t.log)"; \
	done

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	for f in benchmarks/*.py; do $(BIN)/python $$f || exit 1; done

clean-venv:
	rm -rf $(VENV)
