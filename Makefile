# Set-up is idempotent: the venv is installed once per pyproject change, assets once per cache.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FX := $(VENV)/bin/facexplain
OUT ?= out

.PHONY: setup assets demo test bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e ".[app,train,test]"
	# insightface: reference ArcFace alignment for the tests. --no-deps: it requires the GUI build of
	# opencv-python, which would overwrite opencv-python-headless's cv2.
	$(PY) -m pip install --disable-pip-version-check -q --no-deps "insightface==2.1"
	touch $@

setup: $(VENV)/.installed assets

assets: $(VENV)/.installed
	$(FX) assets fetch

# The app on http://127.0.0.1:7860 (app.py's defaults; GRADIO_SERVER_NAME/PORT override them).
demo: setup
	GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 $(PY) app.py

test: setup
	$(PY) -m pytest -q -ra

bench: setup
	mkdir -p $(OUT)
	$(FX) bench equivalence --json $(OUT)/bench_equivalence.json
	$(FX) bench verify --json $(OUT)/bench_verify.json
	$(FX) bench attributes --json $(OUT)/bench_attributes.json

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
