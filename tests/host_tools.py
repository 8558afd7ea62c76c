"""Checks that need a host tool (shellcheck, gcloud, root for `unshare -n`).

Outside CI a missing tool skips the check with the reason; in CI (`.ci/run` sets
CI=true and installs what it needs) it fails, so a check cannot pass unseen.
"""
from __future__ import annotations

import os

import pytest


def missing_tool(reason: str) -> None:
    """Skips the calling test, or fails it when running in CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must provide it: see .ci/run)")
    pytest.skip(reason)
