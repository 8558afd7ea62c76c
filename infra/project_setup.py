"""One-time set-up commands: APIs, the bucket, the image repository, the raw CSVs.

Each builder is a pure function returning argv lists; nothing here runs them.
"""
from __future__ import annotations

from infra.config import CloudConfig
from infra.resources import Argv, bucket_uri, gcs_uri

# The APIs the launchers use: Compute Engine VMs, Dataflow, Cloud Build,
# Artifact Registry and Vertex AI (Cloud Storage is on in every project).
SERVICES = (
    "compute.googleapis.com",
    "dataflow.googleapis.com",
    "cloudbuild.googleapis.com",
    "artifactregistry.googleapis.com",
    "aiplatform.googleapis.com",
)


def services_commands(config: CloudConfig) -> list[Argv]:
    return [["gcloud", "services", "enable", *SERVICES, f"--project={config.project.id}"]]


def bucket_commands(config: CloudConfig) -> list[Argv]:
    """Create the bucket in the configured region, with uniform access control."""
    return [["gcloud", "storage", "buckets", "create", bucket_uri(config),
             f"--project={config.project.id}", f"--location={config.project.region}",
             "--uniform-bucket-level-access"]]


def registry_commands(config: CloudConfig) -> list[Argv]:
    """Create the Artifact Registry Docker repository the trainer image goes to."""
    return [["gcloud", "artifacts", "repositories", "create", config.image.repository,
             "--repository-format=docker", f"--location={config.project.region}",
             f"--project={config.project.id}"]]


def upload_commands(config: CloudConfig) -> list[Argv]:
    """Copy the local Kaggle CSVs to where the Beam job reads them."""
    storage, upload = config.storage, config.upload
    return [["gcloud", "storage", "cp", upload.train_csv, gcs_uri(config, storage.raw_train)],
            ["gcloud", "storage", "cp", upload.test_csv, gcs_uri(config, storage.raw_test)]]
