"""The tuner: keras-tuner's own algorithms over LSTMHyperModel, resumable, distributable.

Layout of a tuner directory (local or gs://):

    TUNER_DIR/search.json        what was searched (data, algorithm, space, base config)
    TUNER_DIR/pilotstate/        keras-tuner's project: oracle.json, trial_*/trial.json,
                                 best-epoch weights, and our pilotstate_trial.json per trial
    TUNER_DIR/tensorboard/<trial id>/   validation curves of each trial
    TUNER_DIR/report/            written by `python -m tuning report`

Re-running the same search resumes it (keras-tuner reloads the oracle; finished
trials are kept); a search with different settings in the same directory is
refused unless `overwrite` is set, which deletes an earlier search's directory but
refuses one that holds anything else (settings.TUNER_DIR_ENTRIES) or the data.  The
chief confirms its writer claim before it deletes, writes search.json or starts a
trial.  A space that some trial could not train on
(tuning.space.SearchSpace.check) is refused before the directory is touched.
Distribution is keras-tuner's chief/worker mode, configured by KERASTUNER_TUNER_ID,
KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT; each process trains on all GPUs
of its machine.
"""
from __future__ import annotations

import logging
import posixpath
from typing import Optional

import keras_tuner as kt
import tensorflow as tf

from trainer.config import TrainConfig
from trainer.data import datasets as data
from trainer.runs import run_dir
from trainer.shared.errors import UserError
from trainer.shared.output_claim import OutputClaim, is_claim
from trainer.shared.paths import holds
from trainer.shared.distribution import describe_devices, make_strategy
from tuning.hypermodel import OBJECTIVE_NAME, LSTMHyperModel
from tuning.settings import (PROJECT, SETTINGS_NAME, TENSORBOARD_DIR, TUNER_DIR_ENTRIES,
                             SearchSettings, setting_differences)

log = logging.getLogger(__name__)

OBJECTIVE = kt.Objective(OBJECTIVE_NAME, direction="min")


class _TrialDirs:
    """Hands each trial's own directories to LSTMHyperModel.fit; the chief confirms its
    claim on the tuner directory (`claim`, None on a worker) before each trial."""

    claim: Optional[OutputClaim] = None

    def run_trial(self, trial, *args, **kwargs):
        if self.claim is not None:
            self.claim.confirm(f"trial {trial.trial_id}")
        kwargs["trial_dir"] = self.get_trial_dir(trial.trial_id)
        kwargs["tensorboard_dir"] = trial_tensorboard_dir(self.directory, trial.trial_id)
        return super().run_trial(trial, *args, **kwargs)


class RandomSearch(_TrialDirs, kt.RandomSearch):
    pass


class BayesianOptimization(_TrialDirs, kt.BayesianOptimization):
    pass


class Hyperband(_TrialDirs, kt.Hyperband):
    pass


def trial_tensorboard_dir(tuner_dir: str, trial_id: str) -> str:
    return posixpath.join(tuner_dir, TENSORBOARD_DIR, trial_id)


def settings_path(tuner_dir: str) -> str:
    return posixpath.join(tuner_dir, SETTINGS_NAME)


def read_settings(tuner_dir: str) -> SearchSettings:
    path = settings_path(tuner_dir)
    if not tf.io.gfile.exists(path):
        raise UserError(f"{path} not found: --tuner-dir must be the --tuner-dir of a "
                        "`python -m tuning search`")
    return SearchSettings.from_dict(run_dir.read_json(path))


def _check_overwritable(tuner_dir: str, data_dir: str) -> None:
    """Refuses a tuner directory that holds the data or anything a search does not write."""
    if holds(tuner_dir, data_dir):
        raise UserError(f"--tuner-dir {tuner_dir} holds the search's --data {data_dir}: "
                        "choose a tuner directory that does not hold the data")
    if not tf.io.gfile.exists(tuner_dir):
        return
    foreign = sorted(name.rstrip("/") for name in tf.io.gfile.listdir(tuner_dir)
                     if name.rstrip("/") not in TUNER_DIR_ENTRIES and not is_claim(name))
    if foreign:
        raise UserError(f"--overwrite: {tuner_dir} holds {', '.join(foreign[:3])}, which a "
                        "search does not write, so nothing was deleted; choose another "
                        "--tuner-dir, or empty it yourself")


def _claim_directory(tuner_dir: str, settings: SearchSettings, overwrite: bool,
                     claim: OutputClaim) -> None:
    """Writes search.json, or checks that an earlier search had the same settings.

    Only max_trials may differ, so that a finished search can be extended.
    `overwrite` removes an earlier search's whole directory first (trials, logs,
    report); a directory holding anything else is refused.
    """
    path = settings_path(tuner_dir)
    if overwrite:
        _check_overwritable(tuner_dir, settings.data_dir)
        if tf.io.gfile.exists(tuner_dir):
            claim.confirm("deleting the earlier search")
            _empty_directory(tuner_dir)
    if tf.io.gfile.exists(path):
        earlier = run_dir.read_json(path)
        ours = settings.to_dict()
        differing = setting_differences(earlier, ours, ignore=("max_trials",))
        if differing:
            raise UserError(f"{tuner_dir} holds a search with other settings ("
                            + "; ".join(differing) + "): use the same settings to resume it, "
                            "--overwrite to start afresh, or another --tuner-dir")
    tf.io.gfile.makedirs(tuner_dir)
    claim.confirm(f"writing {SETTINGS_NAME}")
    run_dir.write_json(path, settings.to_dict())


def _empty_directory(directory: str) -> None:
    """Removes everything in `directory` but this search's writer claim."""
    for name in tf.io.gfile.listdir(directory):
        path = posixpath.join(directory, name.rstrip("/"))
        if is_claim(path):
            continue
        if tf.io.gfile.isdir(path):
            tf.io.gfile.rmtree(path)
        else:
            tf.io.gfile.remove(path)


def checked_base(settings: SearchSettings) -> tuple[TrainConfig, dict]:
    """The base config with its window resolved, and the data's manifest; raises
    tuning.space.SpaceError if some trial of the space could not train on the data."""
    manifest = data.read_manifest(settings.data_dir)
    base = data.resolve_window(settings.base, manifest)
    settings.space.check(base, data.manifest_window(manifest))
    return base, manifest


def make_tuner(settings: SearchSettings, tuner_dir: str, *, overwrite: bool = False,
               strategy: Optional[tf.distribute.Strategy] = None) -> kt.Tuner:
    """The keras-tuner Tuner for `settings`; reloads an earlier search in `tuner_dir`."""
    base, manifest = checked_base(settings)
    strategy = strategy or make_strategy(base.devices)
    log.info("each trial trains on %s", describe_devices(strategy))
    hypermodel = LSTMHyperModel(settings.space, base, settings.data_dir, manifest, strategy)
    # keras-tuner draws a random seed for a falsy one, so seed 0 would not repeat a search.
    common = dict(hypermodel=hypermodel, objective=OBJECTIVE, directory=tuner_dir,
                  project_name=PROJECT, overwrite=overwrite, seed=base.seed + 1,
                  distribution_strategy=strategy)
    if settings.algorithm == "hyperband":
        return Hyperband(max_epochs=base.epochs, factor=settings.hyperband_factor, **common)
    if settings.algorithm == "bayesian":
        return BayesianOptimization(max_trials=settings.max_trials, **common)
    return RandomSearch(max_trials=settings.max_trials, **common)


def search(settings: SearchSettings, tuner_dir: str, claim: Optional[OutputClaim],
           overwrite: bool = False) -> kt.Tuner:
    """Runs (or resumes) the search; returns the tuner.

    The chief (or a single process) holds the tuner directory's writer `claim`
    (trainer/shared/output_claim.py) throughout, taken by the caller; a worker (`claim` None)
    never overwrites."""
    checked_base(settings)  # before the directory is wiped
    overwrite = overwrite and claim is not None
    if claim is not None:
        _claim_directory(tuner_dir, settings, overwrite, claim)
    tuner = make_tuner(settings, tuner_dir, overwrite=overwrite)
    if claim is not None:
        tuner.claim = claim
        # keras-tuner's own table of every trial's values is ~25 lines a trial; the
        # hypermodel logs one line per trial instead (`tuning report` shows them all).
        tuner.oracle.verbose = 0
    tuner.search(epochs=settings.base.epochs)
    return tuner
