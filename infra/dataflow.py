"""Submit the Beam preprocessing job to Dataflow.

It is the same `python -m beam_preprocess` command as on the DirectRunner, with
Dataflow's options; `--setup_file` ships `beam_preprocess` and the record spec
it shares with the trainer to the workers.  It runs with the interpreter that
runs the launcher, which must have the `beam` extra installed.
"""
from __future__ import annotations

import sys

from infra.config import CloudConfig
from infra.resources import REPO_ROOT, Argv, gcs_uri, resource_name


def preprocess_commands(config: CloudConfig, run_id: str) -> list[Argv]:
    storage, dataflow = config.storage, config.dataflow
    return [[
        sys.executable, "-m", "beam_preprocess",
        "--train", gcs_uri(config, storage.raw_train),
        "--test", gcs_uri(config, storage.raw_test),
        "--output", gcs_uri(config, storage.data),
        "--runner=DataflowRunner",
        f"--project={config.project.id}",
        f"--region={config.project.region}",
        f"--job_name={resource_name(config, run_id, 'preprocess')}",
        f"--temp_location={gcs_uri(config, storage.temp, 'dataflow-temp')}",
        f"--staging_location={gcs_uri(config, storage.temp, 'dataflow-staging')}",
        f"--setup_file={REPO_ROOT / 'setup.py'}",
        f"--machine_type={dataflow.machine_type}",
        f"--max_num_workers={dataflow.max_workers}",
        *dataflow.extra_args,
    ]]
