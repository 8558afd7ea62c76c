"""The trainer image, built by a real Docker daemon from the real Dockerfile, and run.

No image registry is reachable here, so the production base
(tensorflow/tensorflow:...-gpu) cannot be pulled.  The Dockerfile takes its base
as a build argument; this test supplies one made locally, in two layers:
1. `pilotstate-test-base`: Debian bookworm with its Python 3.11 and pip, made
   with `debootstrap` from Debian's mirror and turned into an image by
   `docker import`;
2. `pilotstate-test-wheels`: that base plus a wheelhouse that the host's pip
   downloads (`pip download -c requirements.lock ".[tuning]"`), with
   PIP_NO_INDEX/PIP_FIND_LINKS set, so that the Dockerfile's unchanged
   `pip install` reads it.
The project image is then built with `--network none` (nothing is fetched while
building it) and run, also without network: `--help`, the tuner's imports, and a
tiny training on fixture data mounted from the host, whose run must land in the
mounted job directory, written by the image's non-root user.

Both base images are tagged by a hash of what they are made from and reused, so
only the first run pays for debootstrap and the downloads.  Needs a Docker daemon
and root (debootstrap): `make test-docker` starts one (.ci/docker-daemon.sh).
Without a daemon the test fails: it is only collected with `-m docker`.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import pytest

from infra.container_args import BENCH_ENTRYPOINT, BENCH_SCRIPT
from trainer_fixtures import TINY_TRAIN_ARGS, FixtureSpec, write_fixture_data

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parent.parent
DEBIAN_SUITE = "bookworm"  # its python3 is 3.11, the version the wheels are downloaded for
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_PACKAGES = ("python3", "python3-pip", "python3-venv", "python-is-python3",
                   "ca-certificates", "passwd")
PYTHON_VERSION = "3.11"
IMAGE = "pilotstate-trainer:test"
TEST_LABEL = "org.pilotstate.test=docker-image"
STEP_TIMEOUT_S = 1800
GIT_REVISION = "test-docker-image"


def _checked(argv: list[str], **kwargs) -> str:
    """Runs argv; fails the test with the end of its output if it fails."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=STEP_TIMEOUT_S, **kwargs)
    if done.returncode != 0:
        pytest.fail(f"`{' '.join(argv[:4])} ...` exited {done.returncode}:\n"
                    f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def _docker(*args: str, **kwargs) -> str:
    # The legacy builder: BuildKit would need the buildx plugin.
    return _checked(["docker", *args], env={**os.environ, "DOCKER_BUILDKIT": "0"}, **kwargs)


def _image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag],
                          capture_output=True).returncode == 0


def _digest(*parts: bytes) -> str:
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:12]


@pytest.fixture(scope="module")
def docker_daemon() -> None:
    if shutil.which("docker") is None:
        pytest.fail("no `docker` CLI: run `make test-docker` (.ci/docker-daemon.sh installs docker.io)")
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        pytest.fail("no Docker daemon answers: run `make test-docker`, which starts one "
                    f"with .ci/docker-daemon.sh\n{info.stderr[-1000:]}")


@pytest.fixture(scope="module")
def debian_base(docker_daemon) -> str:
    """Debian + Python, from debootstrap and `docker import` (reused when present)."""
    tag = "pilotstate-test-base:" + DEBIAN_SUITE + "-" + _digest(
        DEBIAN_SUITE.encode(), DEBIAN_MIRROR.encode(), " ".join(DEBIAN_PACKAGES).encode())
    if _image_exists(tag):
        return tag
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        pytest.fail("building the base needs root and debootstrap (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        root = os.path.join(tmp, "rootfs")
        _checked(["debootstrap", "--variant=minbase", "--include=" + ",".join(DEBIAN_PACKAGES),
                  DEBIAN_SUITE, root, DEBIAN_MIRROR])
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            _checked(["find", os.path.join(root, cache), "-type", "f", "-delete"])
        with subprocess.Popen(["tar", "-C", root, "--numeric-owner", "-c", "."],
                              stdout=subprocess.PIPE) as tar:
            _docker("import",
                    "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "--change", "ENV LANG=C.UTF-8", "-", tag, stdin=tar.stdout)
        assert tar.returncode == 0
    return tag


@pytest.fixture(scope="module")
def wheel_base(debian_base) -> str:
    """The Debian base plus a wheelhouse for the Dockerfile's `pip install` (reused when present)."""
    inputs = [(REPO / name).read_bytes() for name in ("setup.py", "requirements.lock")]
    tag = "pilotstate-test-wheels:" + _digest(debian_base.encode(), *inputs)
    if _image_exists(tag):
        return tag
    with tempfile.TemporaryDirectory(dir="/var/tmp") as context:
        wheels = os.path.join(context, "wheels")
        # setuptools and wheel: pip's isolated build of the project itself.
        _checked([sys.executable, "-m", "pip", "download", "--quiet", "--dest", wheels,
                  "--only-binary=:all:", "--python-version", PYTHON_VERSION,
                  "-c", "requirements.lock", ".[tuning]", "setuptools", "wheel"], cwd=REPO)
        Path(context, "Dockerfile").write_text(
            f"FROM {debian_base}\n"
            "COPY wheels /wheels\n"
            "ENV PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels\n")
        _docker("build", "--network", "none", "--label", TEST_LABEL, "-t", tag, context)
    return tag


@pytest.fixture(scope="module")
def image(wheel_base) -> str:
    """The project's image from the repository's Dockerfile on the local base."""
    _docker("build", "--network", "none", "--build-arg", f"BASE={wheel_base}",
            "--build-arg", f"GIT_REVISION={GIT_REVISION}", "--label", TEST_LABEL,
            "-t", IMAGE, str(REPO))
    # Earlier builds of IMAGE, now untagged.
    _docker("image", "prune", "--force", "--filter", f"label={TEST_LABEL}")
    return IMAGE


def _run(image: str, *args: str, entrypoint: str | None = None, volumes=()) -> str:
    options = ["--rm", "--network", "none"]
    if entrypoint:
        options += ["--entrypoint", entrypoint]
    for host, container in volumes:
        options += ["--volume", f"{host}:{container}"]
    return _docker("run", *options, image, *args)


def test_image_config_runs_trainer_as_non_root_without_credentials(image):
    config = json.loads(_docker("image", "inspect", image))[0]["Config"]
    assert config["Entrypoint"] == ["python", "-m", "trainer"]
    assert config["User"] == "trainer"
    names = {entry.split("=", 1)[0] for entry in config["Env"]}
    assert not names & {"GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG"}
    assert f"PILOTSTATE_GIT_REVISION={GIT_REVISION}" in config["Env"]
    assert _run(image, "-u", entrypoint="id").strip() != "0"
    # No Apache Beam in the trainer image; keras-tuner and the tuning package are there.
    _run(image, "-c", "import importlib.util as u, keras_tuner, tuning; "
         "assert u.find_spec('apache_beam') is None", entrypoint="python")


SOURCE_DIGESTS = """
import hashlib, importlib, json, pathlib
out = {}
for name in ("trainer", "tuning"):
    package = pathlib.Path(importlib.import_module(name).__file__).parent
    for path in package.rglob("*.py"):
        out[f"{name}/{path.relative_to(package)}"] = hashlib.sha256(path.read_bytes()).hexdigest()
print(json.dumps(out))
"""


def test_image_holds_the_checked_out_code(image):
    installed = json.loads(_run(image, "-c", SOURCE_DIGESTS, entrypoint="python"))
    local = {str(path.relative_to(REPO)): hashlib.sha256(path.read_bytes()).hexdigest()
             for name in ("trainer", "tuning") for path in (REPO / name).rglob("*.py")}
    assert installed == local


def test_help_lists_the_commands(image):
    out = _run(image, "--help")
    assert out.startswith("usage: python -m trainer")
    assert all(command in out for command in ("train", "predict", "score"))


def test_tiny_training_on_mounted_data(image, tmp_path):
    data, job = tmp_path / "data", tmp_path / "job"
    write_fixture_data(str(data), FixtureSpec())
    job.mkdir()
    job.chmod(0o777)  # written by the image's non-root user
    _run(image, "train", "--data", "/data", "--job-dir", "/job", *TINY_TRAIN_ARGS,
         volumes=[(data, "/data:ro"), (job, "/job")])

    (run,) = (job / "runs").iterdir()
    assert (job / "LATEST").read_text().strip() == run.name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["complete"] and metrics["steps"] == metrics["total_steps"] == 120
    assert metrics["final"]["balanced_log_loss"] < math.log(4)
    info = json.loads((run / "run.json").read_text())
    assert info["git_revision"] == GIT_REVISION
    assert info["package_version"] == metadata.version("pilotstate")
    assert (run / "model" / "model.keras").stat().st_uid != 0


def test_the_trainer_benchmark_runs_in_the_image(image, tmp_path):
    """What `python -m infra bench-gpu` runs on a GPU VM, here on the CPU: the script is
    in the image, needs no Apache Beam, and writes its JSON where --json says."""
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)  # written by the image's non-root user
    _run(image, BENCH_SCRIPT, "--windows", "64", "--devices", "1", "--steps", "4",
         "--rows-per-session", "3000", "--no-predict", "--json", "/out/bench.json",
         entrypoint=BENCH_ENTRYPOINT, volumes=[(out, "/out")])
    result = json.loads((out / "bench.json").read_text())
    (row,) = result["feeding_windows_per_s"]
    assert row["window"] == 64 and row["on_device_together"] > 0 and row["step_alone"] > 0
    assert result["tiny_model_steps_per_s"]["on_device_50_per_call"] > 0
