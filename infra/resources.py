"""Names and addresses of the cloud resources, all derived from the CloudConfig.

Nothing here talks to Google Cloud: these are the names the commands use, so
that every launcher agrees on them (the image the build pushes is the image the
VMs and Vertex run; the data the Beam job writes is the data the trainer reads).
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

from infra.config import CloudConfig

Argv = list[str]  # one command, as the argument vector subprocess runs

REPO_ROOT = Path(__file__).resolve().parent.parent  # holds the Dockerfile and setup.py

_RUN_ID = re.compile(r"[a-z0-9]([-a-z0-9]{0,22}[a-z0-9])?")


def new_run_id(now: datetime | None = None) -> str:
    """A run id from the UTC time, e.g. 20250131-235959."""
    return (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")


def check_run_id(run_id: str) -> str:
    """`run_id` if it can be part of instance, job and label names, else ValueError."""
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"run id {run_id!r}: expected 1-24 lowercase letters, digits "
                         "or '-', not starting or ending with '-'")
    return run_id


def bucket_uri(config: CloudConfig) -> str:
    return f"gs://{config.storage.bucket}"


def gcs_uri(config: CloudConfig, path: str, *more: str) -> str:
    """gs:// URI of an object path inside the configured bucket."""
    return "/".join((bucket_uri(config), path, *more))


def registry_host(config: CloudConfig) -> str:
    """Artifact Registry's Docker host of the configured region."""
    return f"{config.project.region}-docker.pkg.dev"


def image_uri(config: CloudConfig) -> str:
    """The trainer image: REGION-docker.pkg.dev/PROJECT/REPOSITORY/NAME:TAG."""
    image = config.image
    return (f"{registry_host(config)}/{config.project.id}/{image.repository}/"
            f"{image.name}:{image.tag}")


def resource_name(config: CloudConfig, run_id: str, *parts: str) -> str:
    """Name of an instance or job of a run, e.g. pilotstate-train-20250131-235959."""
    return "-".join((config.project.resource_prefix, *parts, check_run_id(run_id)))


def internal_dns_name(config: CloudConfig, instance: str) -> str:
    """Zonal internal DNS name by which VMs of the project's network reach `instance`."""
    return f"{instance}.{config.project.zone}.c.{config.project.id}.internal"


def vertex_accelerator_type(config: CloudConfig) -> str:
    """Vertex AI's name of the configured GPU (nvidia-tesla-t4 -> NVIDIA_TESLA_T4)."""
    return config.gpu.accelerator_type.upper().replace("-", "_")
