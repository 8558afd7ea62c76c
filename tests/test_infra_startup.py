"""The VMs' startup script, run for real under bash with recording fakes of the cloud tools.

`curl` answers from a metadata directory built from the launcher's own dry-run
command (so launcher and script are checked together), `docker`, `gcloud` and
`nvidia-smi` record their arguments.  Whatever the container's exit status, and
when a step before it fails, the VM must delete itself.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import pytest

from host_tools import missing_tool
from infra.config import config_from_dict
from infra.resources import REPO_ROOT
from infra.vms import STARTUP_SCRIPT, train_vm_commands, tune_vm_commands

RUN_ID = "r1"
ZONE_PATH = "projects/123456/zones/us-central1-a"  # what the metadata server returns

# A fake tool: records its name and arguments as one JSON line, then behaves as
# told by environment variables.
FAKE_TOOL = textwrap.dedent(f"""\
    #!{sys.executable}
    import json, os, sys, time
    name = os.path.basename(sys.argv[0])
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(json.dumps([name, *sys.argv[1:]]) + "\\n")
    if name == "curl":
        if "Metadata-Flavor: Google" not in sys.argv:
            sys.exit("curl: (22) 403 without the Metadata-Flavor header")
        path = sys.argv[-1].split("/computeMetadata/v1/instance/", 1)[1]
        try:
            with open(os.path.join(os.environ["FAKE_METADATA"], path)) as value:
                sys.stdout.write(value.read())
        except FileNotFoundError:
            sys.exit("curl: (22) The requested URL returned error: 404")
    elif name == "docker" and sys.argv[1] == "run":
        time.sleep(float(os.environ.get("FAKE_DOCKER_SECONDS", "0")))
        sys.exit(int(os.environ["FAKE_DOCKER_STATUS"]))
    elif name == "nvidia-smi":
        sys.exit(int(os.environ["FAKE_NVIDIA_SMI_STATUS"]))
    """)


def config():
    with open(REPO_ROOT / "infra" / "cloud.toml", "rb") as handle:
        return config_from_dict(tomllib.load(handle))


def metadata_of(argv: list[str]) -> tuple[str, dict[str, str]]:
    """Instance name and metadata of a `gcloud compute instances create` command."""
    (value,) = [arg[len("--metadata="):] for arg in argv if arg.startswith("--metadata=")]
    assert value.startswith("^;^")
    return argv[4], dict(entry.split("=", 1) for entry in value[3:].split(";"))


class FakeVm:
    """A directory with the fake tools, the metadata server's answers and the call log."""

    def __init__(self, root: Path, name: str, metadata: dict[str, str]):
        self.log = root / "calls.jsonl"
        self.bin = root / "bin"
        self.bin.mkdir()
        for tool in ("curl", "docker", "gcloud", "nvidia-smi"):
            (self.bin / tool).write_text(FAKE_TOOL)
            (self.bin / tool).chmod(0o755)
        self.metadata = root / "metadata"
        (self.metadata / "attributes").mkdir(parents=True)
        (self.metadata / "name").write_text(name)
        (self.metadata / "zone").write_text(ZONE_PATH)
        for key, value in metadata.items():
            (self.metadata / "attributes" / key).write_text(value)

    def env(self, docker_status: int = 0, nvidia_smi_status: int = 0,
            docker_seconds: float = 0) -> dict[str, str]:
        return {"PATH": f"{self.bin}:/usr/bin:/bin", "FAKE_LOG": str(self.log),
                "FAKE_METADATA": str(self.metadata),
                "FAKE_DOCKER_STATUS": str(docker_status),
                "FAKE_NVIDIA_SMI_STATUS": str(nvidia_smi_status),
                "FAKE_DOCKER_SECONDS": str(docker_seconds)}

    def run(self, **behaviour) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(STARTUP_SCRIPT)], env=self.env(**behaviour),
                              capture_output=True, text=True, timeout=60)

    def all_calls(self) -> list[list[str]]:
        """Every call, tool name first; none yet when the log does not exist."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def calls(self, tool: str) -> list[list[str]]:
        """The arguments of each call of `tool`."""
        return [call[1:] for call in self.all_calls() if call[0] == tool]

    def deleted_itself(self, name: str) -> bool:
        """The last call of a tool other than curl is the deletion of this VM in its zone."""
        last = [call for call in self.all_calls() if call[0] != "curl"][-1]
        return last == ["gcloud", "--quiet", "compute", "instances", "delete", name,
                        "--zone=us-central1-a"]


@pytest.fixture
def train_vm(tmp_path) -> tuple[FakeVm, str, dict[str, str]]:
    (argv,) = train_vm_commands(config(), RUN_ID)
    name, metadata = metadata_of(argv)
    return FakeVm(tmp_path, name, metadata), name, metadata


@pytest.mark.parametrize("docker_status", [0, 1, 137])
def test_train_vm_runs_the_container_on_all_gpus_and_deletes_itself(train_vm, docker_status):
    vm, name, metadata = train_vm
    result = vm.run(docker_status=docker_status)
    assert result.returncode == docker_status, result.stderr
    assert f"the container exited with status {docker_status}" in result.stdout
    assert vm.calls("docker") == [[
        "run", "--rm", "--network=host", "--name=pilotstate", "--gpus", "all",
        metadata["pilotstate-image"], *metadata["pilotstate-args"].split()]]
    assert ["--quiet", "auth", "configure-docker", "us-central1-docker.pkg.dev"] \
        in vm.calls("gcloud")
    assert vm.calls("nvidia-smi")[0] == []
    assert vm.deleted_itself(name)


def test_tune_worker_gets_its_id_the_chief_and_the_python_entrypoint(tmp_path):
    chief, worker, _ = tune_vm_commands(config(), RUN_ID)
    name, metadata = metadata_of(worker)
    vm = FakeVm(tmp_path, name, metadata)
    result = vm.run(docker_status=3)
    assert result.returncode == 3, result.stderr
    chief_dns = f"{chief[4]}.us-central1-a.c.your-project-id.internal"
    assert vm.calls("docker") == [[
        "run", "--rm", "--network=host", "--name=pilotstate", "--gpus", "all",
        "--env", "KERASTUNER_TUNER_ID=tuner0", "--env", f"KERASTUNER_ORACLE_IP={chief_dns}",
        "--env", "KERASTUNER_ORACLE_PORT=8000", "--entrypoint", "python",
        metadata["pilotstate-image"], *metadata["pilotstate-args"].split()]]
    assert metadata["pilotstate-args"].startswith("-m tuning search ")
    assert vm.deleted_itself(name)


def test_tune_chief_runs_without_gpus_and_deletes_itself(tmp_path):
    chief = tune_vm_commands(config(), RUN_ID)[0]
    name, metadata = metadata_of(chief)
    vm = FakeVm(tmp_path, name, metadata)
    result = vm.run(nvidia_smi_status=9)  # no GPU on the chief: never asked for one
    assert result.returncode == 0, result.stderr
    (docker_run,) = vm.calls("docker")
    assert "--gpus" not in docker_run and "KERASTUNER_TUNER_ID=chief" in docker_run
    assert "KERASTUNER_ORACLE_IP=0.0.0.0" in docker_run
    assert vm.calls("nvidia-smi") == []
    assert vm.deleted_itself(name)


def test_no_driver_deletes_the_vm_without_running_the_container(train_vm):
    vm, name, _ = train_vm
    (vm.metadata / "attributes" / "pilotstate-driver-timeout").write_text("0")
    result = vm.run(nvidia_smi_status=9)
    assert result.returncode != 0
    assert "no working NVIDIA driver after 0 s" in result.stderr
    assert vm.calls("docker") == []
    assert vm.deleted_itself(name)


def test_missing_metadata_deletes_the_vm(train_vm):
    vm, name, _ = train_vm
    (vm.metadata / "attributes" / "pilotstate-image").unlink()
    result = vm.run()
    assert result.returncode != 0
    assert vm.calls("docker") == []
    assert vm.deleted_itself(name)


def test_stopping_the_script_still_deletes_the_vm(train_vm):
    """systemd stops a startup script with SIGTERM to its whole process group."""
    vm, name, _ = train_vm
    process = subprocess.Popen(["bash", str(STARTUP_SCRIPT)],
                               env=vm.env(docker_seconds=30), start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not vm.calls("docker") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert vm.calls("docker"), "the container never started"
    os.killpg(process.pid, signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == 143
    assert vm.deleted_itself(name)


def test_startup_script_passes_shellcheck():
    if shutil.which("shellcheck") is None:
        missing_tool("shellcheck is not installed (Debian package shellcheck)")
    result = subprocess.run(["shellcheck", "--shell=bash", str(STARTUP_SCRIPT)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout
