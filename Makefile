# The two commands a newcomer needs: `make demo` (the main job, no AWS account) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export SAM_CLI_TELEMETRY := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test test-fast lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.demo-installed: pyproject.toml functions/requirements.txt | $(PY)
	$(PY) -m pip install -q -e '.[demo]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml requirements-dev.txt | $(PY)
	$(PY) -m pip install -q -r requirements-dev.txt
	# gsplat ships sources only; without CUDA it installs as pure Python (exporter, strategies).
	BUILD_NO_CUDA=1 $(PY) -m pip install -q --no-build-isolation gsplat==1.5.3
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(VENV)/bin/incident-responder demo $(ARGS)

test: $(VENV)/.dev-installed
	$(PY) -m pytest -n 2 $(ARGS)

test-fast: $(VENV)/.dev-installed
	$(PY) -m pytest -n 2 -m "not slow" $(ARGS)

bench: $(VENV)/.dev-installed
	$(PY) bench/triage_latency.py
	$(PY) bench/classifier_eval.py --corpus ../shared/corpus/dev.jsonl

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache
