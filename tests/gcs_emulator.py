"""A real local GCS emulator (gcp-storage-emulator) for gs:// tests.

The emulator runs as a subprocess on 127.0.0.1 with a free port.
STORAGE_EMULATOR_HOST points google-cloud-storage (which Beam 2.77's GCS
filesystem uses) at it.  Beam first looks for Application Default Credentials
(retrying for ~30 s when there are none), so the fixture provides an
authorized-user credential with a long-lived dummy token: nothing ever refreshes
it, and the emulator ignores it.  NO_GCE_CHECK keeps google-auth from probing
the GCE metadata server.

gcp-storage-emulator ignores the ifGenerationMatch precondition, which real GCS
enforces (HTTP 412) and the writer claims (trainer/shared/output_claim.py) rely on, so
this file, run as a script, starts the emulator with its upload and delete
handlers checking it first (its HTTP server is single-threaded, so the check and
the write are atomic).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from http import HTTPStatus
from typing import Callable, Iterator, NamedTuple

import pytest

BUCKET = "pilotstate-test"


class GcsEmulator(NamedTuple):
    host: str     # http://127.0.0.1:PORT
    bucket: str

    def url(self, path: str) -> str:
        return f"gs://{self.bucket}/{path.lstrip('/')}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"GCS emulator exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"GCS emulator did not listen on port {port} in {timeout} s")


def _dummy_credentials(path: str) -> None:
    with open(path, "w") as f:
        json.dump({"type": "authorized_user", "client_id": "emulator",
                   "client_secret": "emulator", "refresh_token": "emulator",
                   "token": "emulator-token", "expiry": "2099-01-01T00:00:00Z"}, f)


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory) -> Iterator[GcsEmulator]:
    """A running emulator with one bucket, and the environment pointing at it."""
    port = _free_port()
    workdir = tmp_path_factory.mktemp("gcs-emulator")
    process = subprocess.Popen(
        [sys.executable, __file__, "start", "--host", "127.0.0.1",
         "--port", str(port), "--in-memory", "--default-bucket", BUCKET],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    credentials = str(workdir / "credentials.json")
    _dummy_credentials(credentials)
    env = {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}",
           "GOOGLE_APPLICATION_CREDENTIALS": credentials,
           "GOOGLE_CLOUD_PROJECT": "pilotstate-test", "NO_GCE_CHECK": "true"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        _wait_for_port(port, process)
        yield GcsEmulator(env["STORAGE_EMULATOR_HOST"], BUCKET)
    finally:
        process.terminate()
        process.wait(timeout=10)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _checking_generation(handler: Callable, object_name: Callable) -> Callable:
    """`handler`, answering 412 first when ifGenerationMatch differs from the object's
    generation (0: the object must not exist), as GCS does."""
    from gcp_storage_emulator.exceptions import NotFound

    def handle(request, response, storage, *args, **kwargs):
        expected = request.query.get("ifGenerationMatch")
        if expected:
            try:
                generation = storage.get_file_obj(request.params["bucket_name"],
                                                  object_name(request))["generation"]
            except NotFound:
                generation = "0"
            if generation != expected[0]:
                response.status = HTTPStatus.PRECONDITION_FAILED
                response.json({"error": {"code": 412, "message": "conditionNotMet", "errors": [
                    {"reason": "conditionNotMet", "message": "Precondition Failed"}]}})
                return None
        return handler(request, response, storage, *args, **kwargs)
    return handle


def _serve_with_preconditions(argv: list[str]) -> int:
    from gcp_storage_emulator import __main__ as emulator, server
    from gcp_storage_emulator.handlers import objects

    def uploaded_name(request) -> str:
        if "name" in request.query:
            return request.query["name"][0]
        return request.data["meta"]["name"]   # multipart upload: the metadata part

    wrapped = {objects.insert: _checking_generation(objects.insert, uploaded_name),
               objects.delete: _checking_generation(
                   objects.delete, lambda request: request.params["object_id"])}
    for _, handlers in server.HANDLERS:
        for method, handler in handlers.items():
            handlers[method] = wrapped.get(handler, handler)
    objects.insert = wrapped[objects.insert]   # the router's fallback for uploads
    return emulator.main(argv)


if __name__ == "__main__":
    sys.exit(_serve_with_preconditions(sys.argv[1:]))
