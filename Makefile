# The README's two commands: `make run` and `make test`. Both create or refresh .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(wildcard proto/*.proto)
GENERATED := services/pb/events_pb2.py
RUN_ARGS ?= --experiments 4 --profile tiny

.PHONY: venv proto run test lint bench clean

venv: $(STAMP) $(GENERATED)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch lies on this disk; pin it before anything pulls a CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(GENERATED): $(PROTOS) proto/generate.py $(STAMP)
	$(PY) proto/generate.py > /dev/null

proto: $(GENERATED)

run: venv
	HF_HUB_OFFLINE=1 $(VENV)/bin/asi-arch run $(RUN_ARGS)

test: venv
	bash deploy/k8s/install-helm.sh $(VENV)/bin
	$(VENV)/bin/ruff check .
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

bench: venv
	$(PY) -m kernels.bench

clean:
	rm -rf $(VENV) services/pb/*_pb2*.py services/pb/*_pb2*.pyi
