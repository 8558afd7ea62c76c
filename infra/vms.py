"""Compute Engine VMs that run the trainer image once and then delete themselves.

Every VM boots the configured image family (a Deep Learning VM image: NVIDIA
driver, Docker with the NVIDIA container toolkit, gcloud) with the startup
script infra/startup/run_container.sh, which reads what to run from the
instance metadata built here, runs it with `docker run --gpus all` and deletes
the VM when the container exits, whatever its exit code.  As a second guard
each VM gets a maximum run duration after which Compute Engine deletes it.

Distributed tuning is one chief VM (keras-tuner's oracle: no training, no GPU)
and N GPU worker VMs that reach the chief by its internal DNS name.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

from infra.config import CloudConfig
from infra.container_args import (BENCH_ENTRYPOINT, TUNING_ENTRYPOINT, bench_args, train_args,
                                  tune_args)
from infra.resources import REPO_ROOT, Argv, image_uri, internal_dns_name, resource_name

STARTUP_SCRIPT = REPO_ROOT / "infra" / "startup" / "run_container.sh"

# gcloud's escape for list flags: "^;^" makes ';' the separator of the
# --metadata entries, so values may contain ',' (config values never hold ';').
_METADATA_SEPARATOR = ";"


def metadata_flag(entries: Mapping[str, str]) -> str:
    """--metadata flag with the entries in order; refuses values gcloud would split."""
    bad = {key: value for key, value in entries.items() if _METADATA_SEPARATOR in value}
    if bad:
        raise ValueError(f"metadata values may not contain {_METADATA_SEPARATOR!r}: {bad}")
    joined = _METADATA_SEPARATOR.join(f"{key}={value}" for key, value in entries.items())
    return f"--metadata=^{_METADATA_SEPARATOR}^{joined}"


@dataclasses.dataclass(frozen=True)
class ContainerVm:
    """One self-deleting VM and the container it runs."""
    name: str
    role: str                 # its `role` label: train, tune-chief, tune-tuner0...
    machine_type: str
    gpus: bool                # the configured GPUs, used with `docker run --gpus all`
    args: tuple[str, ...]     # the container's arguments
    entrypoint: str = ""      # "" = the image's own
    env: tuple[tuple[str, str], ...] = ()  # the container's environment

    def __post_init__(self) -> None:
        for arg in self.args:
            if not arg or any(char.isspace() for char in arg):
                raise ValueError(f"container argument {arg!r} is empty or has whitespace")


def container_metadata(config: CloudConfig, vm: ContainerVm) -> dict[str, str]:
    """The metadata run_container.sh reads: what to run and how."""
    entries = {"install-nvidia-driver": "True"} if vm.gpus else {}
    entries.update({
        "pilotstate-image": image_uri(config),
        "pilotstate-entrypoint": vm.entrypoint,
        "pilotstate-args": " ".join(vm.args),
        "pilotstate-env": " ".join(f"{key}={value}" for key, value in vm.env),
        "pilotstate-gpus": "all" if vm.gpus else "none",
        "pilotstate-driver-timeout": str(config.vm.driver_timeout_s),
    })
    return entries


def create_vm_command(config: CloudConfig, run_id: str, vm: ContainerVm) -> Argv:
    """`gcloud compute instances create` of one self-deleting VM."""
    project, vm_section, gpu = config.project, config.vm, config.gpu
    command = ["gcloud", "compute", "instances", "create", vm.name,
               f"--project={project.id}", f"--zone={project.zone}",
               f"--machine-type={vm.machine_type}"]
    if vm.gpus:
        command += [f"--accelerator=type={gpu.accelerator_type},count={gpu.accelerator_count}",
                    "--maintenance-policy=TERMINATE"]
    return command + [
        f"--image-family={vm_section.image_family}",
        f"--image-project={vm_section.image_project}",
        f"--boot-disk-size={vm_section.boot_disk_gb}GB",
        f"--provisioning-model={vm_section.provisioning_model}",
        f"--max-run-duration={vm_section.max_run_duration}",
        "--instance-termination-action=DELETE",
        "--scopes=cloud-platform",
        f"--labels=app={project.resource_prefix},run={run_id},role={vm.role}",
        f"--metadata-from-file=startup-script={STARTUP_SCRIPT}",
        metadata_flag(container_metadata(config, vm)),
    ]


def train_vm_commands(config: CloudConfig, run_id: str) -> list[Argv]:
    """One GPU VM that runs the trainer's `train` command."""
    vm = ContainerVm(name=resource_name(config, run_id, "train"), role="train",
                     machine_type=config.gpu.machine_type, gpus=True,
                     args=tuple(train_args(config, run_id)))
    return [create_vm_command(config, run_id, vm)]


def bench_gpu_vm_commands(config: CloudConfig, run_id: str) -> list[Argv]:
    """One GPU VM that runs the trainer benchmark in the trainer image (its figures are
    the GPU yardstick of the README) and writes its JSON to the bucket."""
    vm = ContainerVm(name=resource_name(config, run_id, "bench-gpu"), role="bench-gpu",
                     machine_type=config.gpu.machine_type, gpus=True,
                     args=tuple(bench_args(config, run_id)), entrypoint=BENCH_ENTRYPOINT)
    return [create_vm_command(config, run_id, vm)]


def tuner_ids(config: CloudConfig) -> list[str]:
    """keras-tuner's KERASTUNER_TUNER_ID of each VM: the chief, then tuner0, tuner1..."""
    return ["chief", *(f"tuner{index}" for index in range(config.tune.workers))]


def tune_vm_commands(config: CloudConfig, run_id: str) -> list[Argv]:
    """The chief VM (the oracle, listening on every interface), then the GPU workers."""
    chief = resource_name(config, run_id, "tune", "chief")
    commands = []
    for tuner_id in tuner_ids(config):
        is_chief = tuner_id == "chief"
        oracle_ip = "0.0.0.0" if is_chief else internal_dns_name(config, chief)
        vm = ContainerVm(
            name=chief if is_chief else resource_name(config, run_id, "tune", tuner_id),
            role=f"tune-{tuner_id}",
            machine_type=config.tune.chief_machine_type if is_chief
            else config.gpu.machine_type,
            gpus=not is_chief,
            args=tuple(tune_args(config, run_id)),
            entrypoint=TUNING_ENTRYPOINT,
            env=(("KERASTUNER_TUNER_ID", tuner_id), ("KERASTUNER_ORACLE_IP", oracle_ip),
                 ("KERASTUNER_ORACLE_PORT", str(config.tune.oracle_port))))
        commands.append(create_vm_command(config, run_id, vm))
    return commands
