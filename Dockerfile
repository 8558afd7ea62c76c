# The trainer image (GPU): `python -m trainer train|predict|score ...`.
#
#   docker build -t pilotstate-trainer .
#   docker build --build-arg BASE=my-registry/cuda-tf:2.21.0 -t pilotstate-trainer .
#
# The base must provide Python 3.10+ and, for GPUs, CUDA/cuDNN (the official
# TensorFlow GPU image does; a plain CUDA base works too, as pip then installs
# tensorflow from requirements.lock: use tensorflow[and-cuda] there).  Only the
# trainer's dependencies are installed: not the `beam` or `tuning` extras.
# The image holds no credentials: on Vertex AI / GCE they come from the
# metadata server at run time.
ARG BASE=tensorflow/tensorflow:2.21.0-gpu
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    MPLBACKEND=Agg

# Recorded in each run's run.json (there is no .git in the image).
ARG GIT_REVISION=""
ENV PILOTSTATE_GIT_REVISION=${GIT_REVISION}

WORKDIR /opt/pilotstate
# Dependencies first, so that code changes do not reinstall them.
# PIP_BREAK_SYSTEM_PACKAGES: bases whose system Python is marked externally managed.
# Only trainer/ is copied: setup.py's find_packages skips the absent packages.
COPY setup.py requirements.lock ./
COPY trainer/__init__.py trainer/__init__.py
RUN python -m pip install -c requirements.lock .
COPY trainer/ trainer/
# Reinstall the package itself (dependencies are already satisfied).
RUN python -m pip install --no-deps -c requirements.lock . \
    && python -c "import trainer.task, keras, tensorflow; print(tensorflow.__version__, keras.__version__)"

RUN useradd --create-home --shell /usr/sbin/nologin trainer
USER trainer
WORKDIR /home/trainer

ENTRYPOINT ["python", "-m", "trainer"]
CMD ["--help"]
