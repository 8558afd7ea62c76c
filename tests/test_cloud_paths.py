"""Where the trainer and the tuner put files when their directories are gs:// URLs or
Vertex AI's AIP_* variables are set.  TensorFlow's own GCS file system cannot be
pointed at a local emulator, so these check the decisions (every path a gs:// URL
under the right prefix, written through tf.io.gfile), not the writes."""
from __future__ import annotations

import datetime

import pytest

from trainer.config import TrainConfig
from trainer.runs import run_dir
from trainer.shared import vertex
from tuning.search import settings_path, trial_tensorboard_dir

NOW = datetime.datetime(2026, 11, 25, 10, 0, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture
def no_vertex(monkeypatch):
    for var in (*vertex.VERTEX_DIRS.values(), "AIP_MODEL_DIR"):
        monkeypatch.delenv(var, raising=False)


def test_run_paths_stay_under_a_gs_job_dir(no_vertex):
    config = TrainConfig()
    run_id = run_dir.make_run_id(config, NOW)
    assert run_id == f"20261125T100000Z-{config.digest()}"
    paths = run_dir.paths_for("gs://bucket/jobs/lstm", run_id)
    assert paths.run_dir == f"gs://bucket/jobs/lstm/runs/{run_id}"
    for path in (paths.checkpoints, paths.tensorboard, paths.model, paths.keras_model,
                 paths.saved_model, paths.file("metrics.json")):
        assert path.startswith(paths.run_dir + "/"), path
    assert paths.keras_model == f"gs://bucket/jobs/lstm/runs/{run_id}/model/model.keras"


def test_vertex_ai_variables_replace_the_run_subdirectories(monkeypatch):
    monkeypatch.setenv("AIP_MODEL_DIR", "gs://bucket/vertex/job1/model/")
    monkeypatch.setenv("AIP_CHECKPOINT_DIR", "gs://bucket/vertex/job1/checkpoints/")
    monkeypatch.setenv("AIP_TENSORBOARD_LOG_DIR", "gs://bucket/vertex/job1/logs/")
    assert vertex.default_job_dir() == "gs://bucket/vertex/job1"
    paths = run_dir.paths_for(vertex.default_job_dir(), "20261125T100000Z-abcdef12")
    assert paths.run_dir == "gs://bucket/vertex/job1/runs/20261125T100000Z-abcdef12"
    assert paths.model == "gs://bucket/vertex/job1/model/"
    assert paths.keras_model == "gs://bucket/vertex/job1/model/model.keras"
    assert paths.checkpoints == "gs://bucket/vertex/job1/checkpoints/"
    assert paths.tensorboard == "gs://bucket/vertex/job1/logs/"


def test_no_job_dir_outside_vertex_ai(no_vertex):
    assert vertex.default_job_dir() is None


def test_tuner_files_stay_under_a_gs_tuner_dir():
    assert settings_path("gs://bucket/tuning/run1") == "gs://bucket/tuning/run1/search.json"
    assert trial_tensorboard_dir("gs://bucket/tuning/run1", "07") == \
        "gs://bucket/tuning/run1/tensorboard/07"
