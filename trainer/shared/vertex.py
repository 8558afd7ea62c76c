"""What Vertex AI tells a custom training job through its environment (no TensorFlow,
so the command line can claim its job directory before TensorFlow is imported)."""
from __future__ import annotations

import os
import posixpath
from typing import Optional

# The run's own folders that Vertex AI's standard variables replace (run_dir.py).
VERTEX_DIRS = {"checkpoints": "AIP_CHECKPOINT_DIR", "tensorboard": "AIP_TENSORBOARD_LOG_DIR",
               "model": "AIP_MODEL_DIR"}


def default_job_dir() -> Optional[str]:
    """On Vertex AI, the base output directory (the parent of AIP_MODEL_DIR)."""
    model_dir = os.environ.get("AIP_MODEL_DIR")
    return posixpath.dirname(model_dir.rstrip("/")) if model_dir else None
