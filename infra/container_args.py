"""The arguments the trainer image is run with, wherever it runs (VM or Vertex AI).

The image's entry point is `python -m trainer`; tuning runs the same image with
the entry point `python` and `-m tuning search`.  Every path is on the bucket, so
a VM can be deleted as soon as its container exits.
"""
from __future__ import annotations

from infra.config import CloudConfig
from infra.resources import gcs_uri

TUNING_ENTRYPOINT = "python"
BENCH_ENTRYPOINT = "python"
BENCH_SCRIPT = "/opt/pilotstate/bench/bench_trainer.py"  # where the Dockerfile puts it
BENCH_RESULT = "bench-gpu.json"


def train_args(config: CloudConfig, run_id: str) -> list[str]:
    """`train` on the preprocessed data, the job dir RUNS/RUN_ID in the bucket."""
    storage = config.storage
    return ["train", "--data", gcs_uri(config, storage.data),
            "--job-dir", gcs_uri(config, storage.runs, run_id), *config.train.args]


def tune_args(config: CloudConfig, run_id: str) -> list[str]:
    """`-m tuning search` with the shared tuner dir TUNING/RUN_ID in the bucket."""
    storage, tune = config.storage, config.tune
    return ["-m", "tuning", "search", "--data", gcs_uri(config, storage.data),
            "--tuner-dir", gcs_uri(config, storage.tuning, run_id),
            "--algorithm", tune.algorithm, "--max-trials", str(tune.max_trials), *tune.args]


def bench_args(config: CloudConfig, run_id: str) -> list[str]:
    """bench/bench_trainer.py (entry point `python`), its JSON to RUNS/RUN_ID in the bucket."""
    return [BENCH_SCRIPT, "--json", gcs_uri(config, config.storage.runs, run_id, BENCH_RESULT)]
