"""Can this process reach the gs:// paths it was given?  Asked once, at launch.

Without it, missing credentials surface minutes later: Beam's GCS filesystem retries
for over two minutes and ends in a 70-line traceback, TensorFlow's in a traceback of
its own.  `check_gcs_access` takes a few seconds at most: it finds the Application
Default Credentials (google-auth, the same sources Beam, TensorFlow and
google-cloud-storage use) and lists one object of each bucket named, and raises a
UserError that says which credentials are missing or refused and how to give them.
Local paths cost nothing.  No TensorFlow, no Beam: the check runs before either is
imported.
"""
from __future__ import annotations

import os
from typing import Mapping, Optional

from trainer.shared.errors import UserError

_TIMEOUT_SECONDS = 10.0
HOW_TO_GIVE_CREDENTIALS = (
    "give them with `gcloud auth application-default login` (a person), or "
    "GOOGLE_APPLICATION_CREDENTIALS=KEY.json (a service account's key); on Google Cloud "
    "VMs, Dataflow and Vertex AI the VM's service account is used")


class GcsAccessError(UserError):
    """gs:// cannot be reached with the credentials this process has."""


def _buckets(paths: Mapping[str, Optional[str]]) -> dict[str, tuple[str, str]]:
    """bucket -> (option, path) of the first option naming it."""
    found: dict[str, tuple[str, str]] = {}
    for option, path in paths.items():
        if path and path.startswith("gs://"):
            bucket = path[len("gs://"):].split("/", 1)[0]
            found.setdefault(bucket, (option, path))
    return found


def _who(credentials) -> str:
    account = getattr(credentials, "service_account_email", None) or getattr(
        credentials, "account", None)
    return f"the credentials of {account}" if account else "the default credentials"


def check_gcs_access(paths: Mapping[str, Optional[str]]) -> None:
    """Raises GcsAccessError unless every bucket among `paths` (option -> path; None and
    local paths are skipped) can be listed with this process's credentials."""
    buckets = _buckets(paths)
    if not buckets:
        return
    import google.auth
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth
    from google.cloud import storage

    option, path = next(iter(buckets.values()))
    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    credentials = None
    if not emulator:
        try:
            credentials, _ = google.auth.default()
        except auth.DefaultCredentialsError:
            raise GcsAccessError(f"{option} {path}: no Google Cloud credentials were found "
                                 f"(Application Default Credentials); {HOW_TO_GIVE_CREDENTIALS}"
                                 ) from None
    client = storage.Client(credentials=credentials, project=os.environ.get(
        "GOOGLE_CLOUD_PROJECT", "none"))
    for bucket, (option, path) in buckets.items():
        try:
            next(iter(client.list_blobs(bucket, max_results=1, timeout=_TIMEOUT_SECONDS,
                                        retry=None)), None)
        except auth.RefreshError as err:
            raise GcsAccessError(f"{option} {path}: {_who(credentials)} could not be used "
                                 f"({str(err).splitlines()[0]}); renew them, or "
                                 f"{HOW_TO_GIVE_CREDENTIALS}") from None
        except api.NotFound:
            raise GcsAccessError(f"{option} {path}: bucket gs://{bucket} does not exist "
                                 "(or is not visible to this project)") from None
        except (api.Forbidden, api.Unauthorized) as err:
            raise GcsAccessError(f"{option} {path}: {_who(credentials)} may not list "
                                 f"gs://{bucket} ({err.code}); grant them a Storage role on "
                                 f"the bucket, or {HOW_TO_GIVE_CREDENTIALS}") from None
        except (api.GoogleAPIError, auth.TransportError, OSError) as err:
            raise GcsAccessError(f"{option} {path}: Google Cloud Storage could not be "
                                 f"reached ({str(err).splitlines()[0][:200]}); check the "
                                 "network, then retry") from None
