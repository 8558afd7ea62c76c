"""Submit the trainer image as a Vertex AI custom job (one replica, the configured GPUs).

Vertex AI runs the container with the same arguments as a GPU VM does, passed
with --args (a comma-separated list: config values never contain commas), and
deletes its machines itself when the job ends.
"""
from __future__ import annotations

from infra.config import CloudConfig
from infra.container_args import train_args
from infra.resources import (Argv, image_uri, resource_name,
                             vertex_accelerator_type)


def worker_pool_spec(config: CloudConfig) -> str:
    gpu = config.gpu
    return ",".join((f"machine-type={gpu.machine_type}", "replica-count=1",
                     f"accelerator-type={vertex_accelerator_type(config)}",
                     f"accelerator-count={gpu.accelerator_count}",
                     f"container-image-uri={image_uri(config)}"))


def vertex_commands(config: CloudConfig, run_id: str) -> list[Argv]:
    return [["gcloud", "ai", "custom-jobs", "create",
             f"--project={config.project.id}", f"--region={config.project.region}",
             f"--display-name={resource_name(config, run_id, 'train')}",
             f"--worker-pool-spec={worker_pool_spec(config)}",
             "--args=" + ",".join(train_args(config, run_id))]]
