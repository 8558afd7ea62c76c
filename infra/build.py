"""Build the trainer image from the repository's Dockerfile and push it to Artifact Registry.

Two builders, chosen by `[image] builder`:
* `cloud-build`: `gcloud builds submit --tag`, which uploads the repository and
  builds it in the cloud; `--ignore-file=.dockerignore` makes the upload what a
  local `docker build` would send (no .venv, no CSVs, no TFRecords);
* `docker`: a local `docker build` for linux/amd64 (the GPU VMs' platform) and
  `docker push`, after letting Docker authenticate to the registry via gcloud.
"""
from __future__ import annotations

from infra.config import CloudConfig
from infra.resources import REPO_ROOT, Argv, image_uri, registry_host

DOCKER_IGNORE = ".dockerignore"  # relative to the source directory, as gcloud reads it


def build_commands(config: CloudConfig) -> list[Argv]:
    image = image_uri(config)
    if config.image.builder == "cloud-build":
        return [["gcloud", "builds", "submit", str(REPO_ROOT), f"--tag={image}",
                 f"--ignore-file={DOCKER_IGNORE}",
                 f"--project={config.project.id}", f"--region={config.project.region}",
                 f"--timeout={config.image.build_timeout}"]]
    return [["gcloud", "auth", "configure-docker", registry_host(config), "--quiet"],
            ["docker", "build", "--platform=linux/amd64", f"--tag={image}", str(REPO_ROOT)],
            ["docker", "push", image]]
