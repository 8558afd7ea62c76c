"""gs:// without credentials, or to a bucket that is not there, fails at launch in one
line that says what is missing and how to give it (trainer/shared/gcs_access.py), instead of
minutes of retries and a traceback."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from trainer.shared.gcs_access import GcsAccessError, check_gcs_access

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _without_credentials(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST",
                        "CLOUDSDK_CONFIG")}
    # No gcloud credentials file under HOME; no probe of a GCE metadata server.
    return {**env, "HOME": str(tmp_path), "NO_GCE_CHECK": "true", "PYTHONPATH": REPO}


@pytest.mark.parametrize("argv", [
    ["beam_preprocess", "--train", "gs://some-bucket/train.csv", "--output", "gs://some-bucket/out"],
    ["trainer", "train", "--data", "gs://some-bucket/data", "--job-dir", "{tmp}/job"],
    ["trainer", "predict", "--run", "{tmp}/run", "--data", "gs://some-bucket/data",
     "--out", "{tmp}/s.csv"],
    ["tuning", "search", "--data", "gs://some-bucket/data", "--tuner-dir", "{tmp}/tuner"],
], ids=["beam_preprocess", "train", "predict", "tuning"])
def test_gs_without_credentials_fails_at_once_in_one_line(argv, tmp_path):
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", *[a.format(tmp=tmp_path) for a in argv]],
                          env=_without_credentials(tmp_path), cwd=REPO, text=True,
                          capture_output=True, timeout=120)
    seconds = time.monotonic() - started
    err = done.stderr.strip()
    assert done.returncode != 0 and seconds < 30, (seconds, err)
    assert len(err.splitlines()) <= 2 and "Traceback" not in err, err
    assert "gs://some-bucket" in err and "no Google Cloud credentials" in err, err
    assert "GOOGLE_APPLICATION_CREDENTIALS" in err and "gcloud auth" in err, err


def test_a_missing_bucket_is_named_and_a_present_one_passes(gcs_emulator):
    check_gcs_access({"--data": gcs_emulator.url("data"), "--job-dir": "/tmp/local",
                      "--config": None})
    with pytest.raises(GcsAccessError, match="--job-dir gs://no-such-bucket/job: bucket "
                                             "gs://no-such-bucket does not exist"):
        check_gcs_access({"--data": gcs_emulator.url("data"),
                          "--job-dir": "gs://no-such-bucket/job"})


def test_local_paths_need_no_credentials(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    check_gcs_access({"--data": str(tmp_path), "--out": None})
