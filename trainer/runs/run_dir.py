"""The run directory: where one training run keeps everything that describes it.

Layout under the job directory (local or gs://):

    JOB_DIR/runs/<run id>/       config.json, run.json (metadata), metrics.json,
                                 plots/, checkpoints/, tensorboard/, model/
    JOB_DIR/IN_PROGRESS          id of the run being trained (removed when done)
    JOB_DIR/LATEST               id of the last run that finished

Run id = UTC start time + short hash of the config.  Resuming: a new `train` with
the same job dir looks at IN_PROGRESS; if that run's config.json equals the new
config, the run is resumed in place (from its last checkpoint); otherwise a new
run starts.  On Vertex AI the standard AIP_CHECKPOINT_DIR, AIP_TENSORBOARD_LOG_DIR
and AIP_MODEL_DIR replace the run's own checkpoints/, tensorboard/ and model/.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import posixpath
import subprocess
from importlib import metadata
from typing import Any, Optional

import tensorflow as tf

from trainer.config import TrainConfig
from trainer.shared.errors import UserError
from trainer.shared.vertex import VERTEX_DIRS

IN_PROGRESS = "IN_PROGRESS"
LATEST = "LATEST"


@dataclasses.dataclass(frozen=True)
class RunPaths:
    run_id: str
    run_dir: str
    checkpoints: str
    tensorboard: str
    model: str

    def file(self, name: str) -> str:
        return posixpath.join(self.run_dir, name)

    @property
    def keras_model(self) -> str:
        return posixpath.join(self.model, "model.keras")

    @property
    def saved_model(self) -> str:
        return posixpath.join(self.model, "saved_model")


def make_run_id(config: TrainConfig, now: Optional[datetime.datetime] = None) -> str:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{config.digest()}"


def paths_for(job_dir: str, run_id: str) -> RunPaths:
    run_dir = posixpath.join(job_dir, "runs", run_id)
    dirs = {name: os.environ.get(var) or posixpath.join(run_dir, name)
            for name, var in VERTEX_DIRS.items()}
    return RunPaths(run_id=run_id, run_dir=run_dir, **dirs)


def read_json(path: str) -> Any:
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def write_json(path: str, value: Any) -> None:
    """Writes JSON via a temporary file and a rename (atomic on local disks)."""
    tmp = path + ".tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(json.dumps(value, indent=2, sort_keys=True) + "\n")
    tf.io.gfile.rename(tmp, path, overwrite=True)


def update_json(path: str, values: dict) -> None:
    """Adds (or replaces) top-level keys of a JSON object file."""
    write_json(path, {**read_json(path), **values})


def _read_marker(job_dir: str, name: str) -> Optional[str]:
    path = posixpath.join(job_dir, name)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return f.read().strip() or None


def _write_marker(job_dir: str, name: str, run_id: str) -> None:
    with tf.io.gfile.GFile(posixpath.join(job_dir, name), "w") as f:
        f.write(run_id + "\n")


def open_run(job_dir: str, config: TrainConfig, run_info: dict) -> tuple[RunPaths, bool]:
    """Resumes the job dir's in-progress run if its config matches, else starts one.

    Returns the run's paths and whether it was resumed.  A new run gets
    config.json and run.json (`run_info` plus version and git revision).
    """
    tf.io.gfile.makedirs(job_dir)
    in_progress = _read_marker(job_dir, IN_PROGRESS)
    if in_progress:
        paths = paths_for(job_dir, in_progress)
        config_path = paths.file("config.json")
        if (tf.io.gfile.exists(config_path)
                and read_json(config_path) == config.to_dict()):
            return paths, True
    paths = paths_for(job_dir, make_run_id(config))
    for d in (paths.run_dir, paths.checkpoints, paths.tensorboard, paths.model):
        tf.io.gfile.makedirs(d)
    config.save(paths.file("config.json"))
    write_json(paths.file("run.json"), {
        **run_info,
        "run_id": paths.run_id,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "package_version": package_version(),
        "git_revision": git_revision(),
        "paths": dataclasses.asdict(paths),
        "replaced_in_progress_run": in_progress,
    })
    _write_marker(job_dir, IN_PROGRESS, paths.run_id)
    return paths, False


def finish_run(job_dir: str, paths: RunPaths) -> None:
    """Marks the run finished: LATEST names it, IN_PROGRESS is removed."""
    _write_marker(job_dir, LATEST, paths.run_id)
    marker = posixpath.join(job_dir, IN_PROGRESS)
    if tf.io.gfile.exists(marker):
        tf.io.gfile.remove(marker)


def find_run(path: str) -> RunPaths:
    """The run at `path`: a run directory, or a job directory (its LATEST run)."""
    if tf.io.gfile.exists(posixpath.join(path, "run.json")):
        return RunPaths(**read_json(posixpath.join(path, "run.json"))["paths"])
    latest = _read_marker(path, LATEST)
    if latest:
        return find_run(posixpath.join(path, "runs", latest))
    raise UserError(f"{path} is neither a run directory (no run.json) nor a job directory "
                    f"with a finished run (no {LATEST}): give --run JOB_DIR/runs/RUN_ID, or the "
                    "--job-dir of a `trainer train` that finished")


def fingerprint(manifest: dict) -> str:
    """SHA-256 of the data manifest (which records its inputs and options)."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def package_version() -> str:
    try:
        return metadata.version("pilotstate")
    except metadata.PackageNotFoundError:
        return "unknown"


def git_revision() -> Optional[str]:
    """PILOTSTATE_GIT_REVISION (set in images), else the source checkout's HEAD."""
    if os.environ.get("PILOTSTATE_GIT_REVISION"):
        return os.environ["PILOTSTATE_GIT_REVISION"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=os.path.dirname(os.path.abspath(__file__)), timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None
