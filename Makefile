# auditkit — `make demo` runs the credit-risk audit; `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch is installed first (a bare `torch` requirement pulls a multi-GB CUDA build).
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install demo demo-ner test test-fast test-slow bench lint screenshot clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

demo: install
	@$(BIN)/auditkit run audits/credit_risk.yaml; rc=$$?; \
	if [ $$rc -eq 1 ]; then echo "(the audit ran; a gate failed: see the report)"; fi; test $$rc -le 1

demo-ner: install
	@$(BIN)/auditkit run audits/ner_people.yaml; rc=$$?; \
	if [ $$rc -eq 1 ]; then echo "(the audit ran; a gate failed: see the report)"; fi; test $$rc -le 1

# Every test, the slow end-to-end ones too (real MiniLM, Adult, COMPAS, Ray, LiRA): CI runs this.
test: install
	$(BIN)/python -m pytest -n 2 --durations=15 $(PYTEST_ARGS)

test-slow: install
	$(BIN)/python -m pytest -n 2 -m slow --durations=15 $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -n 2 -m "not slow" $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m benchmarks

screenshot: install
	$(BIN)/python tools/screenshot.py reports/credit_risk/report.html reports/credit_risk.png

lint: install
	$(BIN)/ruff check auditkit tests benchmarks audits tools
	$(BIN)/ruff format --check auditkit tests benchmarks audits tools

clean:
	rm -rf reports/* models/ .pytest_cache
