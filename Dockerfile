# The trainer image (GPU): `python -m trainer train|predict|score ...`, and the
# tuner from the same image: `--entrypoint python IMAGE -m tuning search ...`.
#
#   docker build -t pilotstate-trainer .
#   docker build --build-arg BASE=my-registry/cuda-tf:2.21.0 -t pilotstate-trainer .
#
# The base must provide Python 3.10+ (as `python`, with pip) and, for GPUs,
# CUDA/cuDNN (the official TensorFlow GPU image does; a plain CUDA base works too,
# as pip then installs tensorflow from requirements.lock: use tensorflow[and-cuda]
# there).  The `trainer` extra (TensorFlow, Keras, ...; the base dependencies are
# the Beam job's) and the `tuning` extra (keras-tuner) are installed, not the
# `beam` extra: the image has no Apache Beam.
# `make test-docker` builds this same file on a local Debian base whose pip reads
# a wheelhouse (tests/test_docker_image.py), as no image registry is reachable there.
# The image holds no credentials: on Vertex AI / GCE they come from the metadata
# server at run time; locally, mount an ADC file (see the README).
ARG BASE=tensorflow/tensorflow:2.21.0-gpu
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    MPLBACKEND=Agg

WORKDIR /opt/pilotstate
# Dependencies first, so that code changes do not reinstall them: this layer
# depends on setup.py and requirements.lock only (empty packages stand in for
# the code, so that setup.py's find_packages finds them; removed with their
# build directory, lest setuptools keep a stub that is newer than the real file).
# PIP_BREAK_SYSTEM_PACKAGES: bases whose system Python is marked externally managed.
COPY setup.py requirements.lock ./
RUN mkdir trainer tuning && touch trainer/__init__.py tuning/__init__.py \
    && python -m pip install -c requirements.lock ".[trainer,tuning]" \
    && rm -rf build ./*.egg-info trainer tuning
COPY trainer/ trainer/
COPY tuning/ tuning/
# The trainer benchmark (`python -m infra bench-gpu` runs it on a GPU VM) and the
# fixture data it writes.
COPY bench/bench_trainer.py bench/provenance.py tests/trainer_fixtures.py bench/
# Reinstall the package itself (dependencies are already satisfied).
RUN python -m pip install --no-deps -c requirements.lock . \
    && python -c "import trainer.task, tuning, keras_tuner, tensorflow, keras; \
print('tensorflow', tensorflow.__version__, 'keras', keras.__version__, 'keras-tuner', keras_tuner.__version__)"

RUN useradd --create-home --shell /usr/sbin/nologin trainer

# Recorded in each run's run.json (there is no .git in the image).  Last, so that
# a new revision rebuilds no layer above.
ARG GIT_REVISION=""
ENV PILOTSTATE_GIT_REVISION=${GIT_REVISION}

USER trainer
WORKDIR /home/trainer

ENTRYPOINT ["python", "-m", "trainer"]
CMD ["--help"]
