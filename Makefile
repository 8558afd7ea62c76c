# Two commands do all the set-up on a fresh machine:
#   make demo   generate data and run every stage end to end
#   make test   run the test suite (what CI runs)
# Both create and reuse .venv; it is rebuilt when setup.py or requirements.lock change.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

DEMO_DIR   ?= demo-out
DEMO_SCALE ?= 0.05
DEMO_SEED  ?= 0

.PHONY: venv test test-slow demo bench clean

$(STAMP): setup.py requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade "pip==26.3"
	$(VENV)/bin/pip install --quiet -c requirements.lock -e ".[beam,tuning,test]"
	touch $(STAMP)

venv: $(STAMP)

test: venv
	$(PY) -m pytest -q

test-slow: venv
	$(PY) -m pytest -q -m slow

demo: venv
	$(PY) -m beam_preprocess.synth --out $(DEMO_DIR)/raw --scale $(DEMO_SCALE) --seed $(DEMO_SEED)
	@echo "demo: generated Kaggle-format CSVs in $(DEMO_DIR)/raw"

bench: venv
	$(PY) bench/bench_synth.py --out bench-out

clean:
	rm -rf $(VENV) $(DEMO_DIR) bench-out
