"""Every gcloud command the launchers print, parsed by the real gcloud CLI, offline.

gcloud parses all of a command's flags (--metadata's `^;^` escaping, the
accelerator and worker-pool specs, durations...) before it needs an account:
with a fresh, empty gcloud configuration and no network (`unshare -n`), a
command whose arguments are right stops with "no active account" (status 1),
while a wrong flag or value stops with a usage error (status 2).  Slow (about
3 s of CPU per command), so opt-in: `pytest -m slow tests/test_infra_gcloud.py`.
"""
from __future__ import annotations

import copy
import shutil
import subprocess
import tomllib

import pytest

from host_tools import missing_tool
from infra.config import config_from_dict
from infra.plans import DESCRIPTIONS, plan_commands
from infra.resources import REPO_ROOT

NO_ACCOUNT = "You do not currently have an active account selected"


def gcloud_commands() -> list[list[str]]:
    with open(REPO_ROOT / "infra" / "cloud.toml", "rb") as handle:
        document = tomllib.load(handle)
    docker_builder = copy.deepcopy(document)
    docker_builder["image"]["builder"] = "docker"
    commands = [argv for name in DESCRIPTIONS if name != "all"
                for argv in plan_commands(name, config_from_dict(document), "r1")]
    commands += plan_commands("build", config_from_dict(docker_builder), "r1")
    return [argv for argv in commands if argv[0] == "gcloud"]


def offline_env(tmp_path) -> dict[str, str]:
    """No credentials, no metadata-server probe, no prompts, no update checks."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path),
            "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
            "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
            "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
            "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1"}


@pytest.mark.slow
def test_gcloud_accepts_every_generated_command(tmp_path):
    if shutil.which("gcloud") is None:
        missing_tool("the gcloud CLI is not installed")
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        missing_tool("cannot cut the network with `unshare -n` (needs root)")
    commands = gcloud_commands()
    assert {tuple(argv[1:3]) for argv in commands} >= {
        ("services", "enable"), ("storage", "buckets"), ("artifacts", "repositories"),
        ("storage", "cp"), ("builds", "submit"), ("auth", "configure-docker"),
        ("compute", "instances"), ("ai", "custom-jobs")}
    for argv in commands:
        result = subprocess.run(["unshare", "-n", *argv], env=offline_env(tmp_path),
                                cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        if argv[1:3] == ["auth", "configure-docker"]:  # local only: it writes Docker's config
            assert result.returncode == 0, result.stderr
            assert argv[3] in (tmp_path / ".docker" / "config.json").read_text()
        else:
            assert result.returncode == 1 and NO_ACCOUNT in result.stderr, (argv, result.stderr)
