"""Shared fixtures.  The GCS emulator fixtures live in tests/gcs_emulator.py."""
from gcs_emulator import gcs_emulator  # noqa: F401  (pytest fixture)


# --- trainer fixtures (named trainer_*) ---
import pytest  # noqa: E402

from trainer_fixtures import TINY_TRAIN_ARGS, FixtureSpec, write_fixture_data  # noqa: E402


@pytest.fixture(scope="session")
def trainer_data_dir(tmp_path_factory) -> str:
    """A small data directory in the record format (sine fixture, window 64)."""
    out = tmp_path_factory.mktemp("trainer_data")
    write_fixture_data(str(out), FixtureSpec())
    return str(out)


@pytest.fixture(scope="session")
def trainer_trained_job(tmp_path_factory, trainer_data_dir) -> str:
    """A job directory holding one finished tiny run on trainer_data_dir."""
    from trainer.task import main

    job_dir = str(tmp_path_factory.mktemp("trainer_job"))
    assert main(["train", "--data", trainer_data_dir, "--job-dir", job_dir, *TINY_TRAIN_ARGS]) == 0
    return job_dir
