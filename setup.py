"""Distribution `pilotstate`: Beam preprocessing, the LSTM trainer and the tuner.

The same file is the `--setup_file` that Dataflow uses to ship `beam_preprocess`
(and the record spec it shares with `trainer`) to its workers, which install it
with its base dependencies only: so those are what the Beam job needs, and the
trainer's (TensorFlow, Keras, TensorBoard, matplotlib) are the extra
`.[trainer]` (the job writes its tf.train.Example records without TensorFlow:
trainer/records/example_proto.py).  Dataflow workers already run the Beam SDK, so Apache
Beam is an extra too (`.[beam]`, for the launcher and local runs).  `.[tuning]`
is keras-tuner with the trainer's dependencies (the tuner runs the trainer).
The trainer image installs `.[trainer,tuning]`, not Beam; `make venv` everything.
"""
from setuptools import find_packages, setup

VERSION = "0.1.0"

# Direct dependencies, pinned.  requirements.lock pins the whole resolved set
# (the Makefile and the Dockerfile install with `-c requirements.lock`).
# The base: what the Beam job imports besides Beam (and what a Dataflow worker installs).
INSTALL_REQUIRES = [
    "numpy==2.4.6",
    "pandas==3.1.1",
    "pyarrow==25.0.1",   # the CSV parser (also a dependency of apache-beam)
    "google-cloud-storage==3.17.1",
]

TRAINER_REQUIRES = [
    "tensorflow==2.21.0",
    "keras==3.15.1",
    "tensorboard==2.21.0",  # no longer installed with TensorFlow 2.21
    "matplotlib==3.11.2",
]

EXTRAS_REQUIRE = {
    "trainer": TRAINER_REQUIRES,
    "beam": ["apache-beam[gcp]==2.77.0"],
    "tuning": [*TRAINER_REQUIRES, "keras-tuner==1.4.8"],
    "bench": ["lightgbm==4.7.0"],
    "test": [
        "pytest==9.2.0",
        "psutil==7.2.2",
        "gcp-storage-emulator==2026.7.19",
    ],
}

setup(
    name="pilotstate",
    version=VERSION,
    description=(
        "Pilots' cognitive state from physiological signals: Beam preprocessing, "
        "a distributed LSTM trainer and keras-tuner search"
    ),
    python_requires=">=3.10",
    packages=find_packages(include=["beam_preprocess*", "trainer*", "tuning*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={
        "console_scripts": [
            "pilotstate-synth=beam_preprocess.synth:main",
            "pilotstate-preprocess=beam_preprocess.__main__:main",
            "pilotstate-train=trainer.task:main",
            "pilotstate-tune=tuning.task:main",
        ]
    },
)
