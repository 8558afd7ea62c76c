# Two commands do all the set-up on a fresh machine:
#   make demo   generate data and run every stage end to end
#   make test   run the test suite (what CI runs)
# Both create and reuse .venv; it is rebuilt when setup.py or requirements.lock change.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

DEMO_DIR   ?= demo-out
DEMO_SCALE      ?= 0.1
DEMO_TEST_SCALE ?= 0.05
DEMO_SEED  ?= 0

.PHONY: venv test test-slow test-docker demo images demo-images bench clean

$(STAMP): setup.py requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade "pip==26.3"
	$(VENV)/bin/pip install --quiet -c requirements.lock -e ".[beam,trainer,tuning,test,bench]"
	touch $(STAMP)

venv: $(STAMP)

test: venv
	$(PY) -m pytest -q

test-slow: venv
	$(PY) -m pytest -q -m slow

# Builds and runs the trainer image with a real Docker daemon (started if none answers).
test-docker: venv
	bash .ci/docker-daemon.sh
	$(PY) -m pytest -q -m docker

# The demo: every stage on generated data, small enough for ~10 minutes on 2 cores.
# Training data at DEMO_SCALE, test data at DEMO_TEST_SCALE (the test CSV is 3.7x larger).
# The trainer's defaults: validation every 25 steps, early stopping, the best epoch exported;
# predict's defaults: causal, every 16 rows, moved to the training rows' class shares.
DEMO_TRAIN_ARGS ?=
DEMO_TUNE_ARGS  ?= --algorithm random --max-trials 4 --max-layers 2 --units 32,64 \
                   --batch-sizes 128,256 --augment 0,1 --epochs 10 --patience 3
DEMO_PREDICT_ARGS ?=

demo: venv
	@echo "== 1/8 generate Kaggle-format CSVs"
	$(PY) -m beam_preprocess.synth --out $(DEMO_DIR)/raw --scale $(DEMO_SCALE) --seed $(DEMO_SEED) --splits train
	$(PY) -m beam_preprocess.synth --out $(DEMO_DIR)/raw --scale $(DEMO_TEST_SCALE) --seed $(DEMO_SEED) --splits test
	@echo "== 2/8 preprocess (Beam, local runner)"
	$(PY) -m beam_preprocess --train $(DEMO_DIR)/raw/train.csv --test $(DEMO_DIR)/raw/test.csv \
	    --output $(DEMO_DIR)/data --scale-by pilot --seed $(DEMO_SEED) --overwrite
	@echo "== 3/8 train"
	$(PY) -m trainer train --data $(DEMO_DIR)/data --job-dir $(DEMO_DIR)/job --seed $(DEMO_SEED) $(DEMO_TRAIN_ARGS)
	@echo "== 4/8 tune"
	$(PY) -m tuning search --data $(DEMO_DIR)/data --tuner-dir $(DEMO_DIR)/tuning --overwrite \
	    --seed $(DEMO_SEED) $(DEMO_TUNE_ARGS)
	@echo "== 5/8 review the trials"
	$(PY) -m tuning report --tuner-dir $(DEMO_DIR)/tuning
	@echo "== 6/8 predict the test set"
	$(PY) -m trainer predict --run $(DEMO_DIR)/job --data $(DEMO_DIR)/data \
	    --out $(DEMO_DIR)/submission.csv --overwrite --labels $(DEMO_DIR)/raw/test_labels.csv 	    $(DEMO_PREDICT_ARGS)
	@echo "== 7/8 score the submission against test_labels.csv"
	$(PY) -m trainer score --submission $(DEMO_DIR)/submission.csv --labels $(DEMO_DIR)/raw/test_labels.csv \
	    > $(DEMO_DIR)/score.json
	@echo "== 8/8 the yardsticks: a gradient-boosting peer and the constant training prior"
	$(PY) bench/peer_gbm.py --data $(DEMO_DIR)/data --labels $(DEMO_DIR)/raw/test_labels.csv \
	    --out $(DEMO_DIR)/gbm-submission.csv --json $(DEMO_DIR)/gbm.json > /dev/null
	@echo
	@$(PY) bench/demo_scores.py --lstm $(DEMO_DIR)/score.json --gbm $(DEMO_DIR)/gbm.json
	@echo
	@echo "demo artefacts:"
	@echo "  raw CSVs           $(DEMO_DIR)/raw/{train,test,test_labels}.csv"
	@echo "  TFRecords          $(DEMO_DIR)/data/{train,valid,test}/  manifest: $(DEMO_DIR)/data/manifest.json"
	@echo "  quarantine         $(DEMO_DIR)/data/quarantine/"
	@echo "  training run       $(DEMO_DIR)/job/runs/$$(cat $(DEMO_DIR)/job/LATEST)/  (plots/, metrics.json, model/)"
	@echo "  TensorBoard        .venv/bin/tensorboard --logdir $(DEMO_DIR)/job/runs"
	@echo "  tuning report      $(DEMO_DIR)/tuning/report/  (trials.md, *.png, best_config.json)"
	@echo "  tuning HParams     .venv/bin/tensorboard --logdir $(DEMO_DIR)/tuning/report/hparams"
	@echo "  submission         $(DEMO_DIR)/submission.csv  score: $(DEMO_DIR)/score.json"
	@echo "  test session plot  $(DEMO_DIR)/submission_session.png"
	@echo "  GBM peer           $(DEMO_DIR)/gbm-submission.csv  scores: $(DEMO_DIR)/gbm.json"

# The README's pictures (docs/images/), made by the demo's own commands: `make images` runs the
# demo, then copies; `make demo-images` copies from an existing DEMO_DIR.
IMAGES_DIR ?= docs/images
images: demo demo-images

demo-images:
	@test -f $(DEMO_DIR)/job/LATEST || { echo "$(DEMO_DIR) holds no finished demo: run make demo first"; exit 1; }
	mkdir -p $(IMAGES_DIR)
	cp $(DEMO_DIR)/job/runs/$$(cat $(DEMO_DIR)/job/LATEST)/plots/loss.png $(IMAGES_DIR)/training-loss.png
	cp $(DEMO_DIR)/job/runs/$$(cat $(DEMO_DIR)/job/LATEST)/plots/confusion.png $(IMAGES_DIR)/confusion.png
	cp $(DEMO_DIR)/submission_session.png $(IMAGES_DIR)/test-session.png
	cp $(DEMO_DIR)/tuning/report/per_class_best.png $(IMAGES_DIR)/tuning-per-class.png

bench: venv
	$(PY) bench/bench_synth.py --out bench-out

clean:
	rm -rf $(VENV) $(DEMO_DIR) bench-out
