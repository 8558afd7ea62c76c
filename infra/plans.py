"""The launcher's commands: each name maps to the argv lists it runs, in order."""
from __future__ import annotations

from typing import Callable

from infra.build import build_commands
from infra.config import CloudConfig
from infra.dataflow import preprocess_commands
from infra.project_setup import (bucket_commands, registry_commands, services_commands,
                                 upload_commands)
from infra.resources import Argv
from infra.vertex import vertex_commands
from infra.vms import bench_gpu_vm_commands, train_vm_commands, tune_vm_commands

Plan = Callable[[CloudConfig, str], list[Argv]]  # (config, run id) -> commands

PLANS: dict[str, Plan] = {
    "services": lambda config, run_id: services_commands(config),
    "bucket": lambda config, run_id: bucket_commands(config),
    "registry": lambda config, run_id: registry_commands(config),
    "upload": lambda config, run_id: upload_commands(config),
    "build": lambda config, run_id: build_commands(config),
    "preprocess": preprocess_commands,
    "train": train_vm_commands,
    "tune": tune_vm_commands,
    "vertex": vertex_commands,
    "bench-gpu": bench_gpu_vm_commands,
}

# `all`: from an empty project to a trained model, every step with the same run id.
ALL_STEPS = ("services", "bucket", "registry", "upload", "build", "preprocess", "train")

DESCRIPTIONS = {
    "services": "enable the Google Cloud APIs the launchers use",
    "bucket": "create the Cloud Storage bucket",
    "registry": "create the Artifact Registry Docker repository",
    "upload": "copy the local Kaggle CSVs to the bucket",
    "build": "build the trainer image and push it to Artifact Registry",
    "preprocess": "run the Beam preprocessing job on Dataflow",
    "train": "train on a self-deleting GPU VM",
    "tune": "tune on a chief VM and N self-deleting GPU worker VMs",
    "vertex": "train as a Vertex AI custom job",
    "bench-gpu": "benchmark the trainer's feeding on a self-deleting GPU VM; JSON to the bucket",
    "all": "every step of " + ", ".join(ALL_STEPS),
}


def plan_commands(name: str, config: CloudConfig, run_id: str) -> list[Argv]:
    """The commands of launcher command `name` (a key of DESCRIPTIONS)."""
    steps = ALL_STEPS if name == "all" else (name,)
    return [argv for step in steps for argv in PLANS[step](config, run_id)]
