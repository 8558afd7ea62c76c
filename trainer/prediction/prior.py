"""Class-prior correction of predicted probabilities.

A model trained on balanced windows predicts as if every class were equally
likely; the test data is not (A ~58%, B ~3%).  Bayes' rule moves it to a target
prior: p'(c) is proportional to p(c) * target(c) / training_prior(c).  The
target is either given or estimated from the unlabelled test predictions: by
black-box shift estimation with the validation confusion (`estimate_prior_bbse`)
or by EM (`estimate_prior_em`); `balance_prior` then mixes the uniform prior into
it, so the balanced (mean per class) log loss is not given away for the overall.
"""
from __future__ import annotations

import enum
from typing import Optional, Union

import numpy as np

from trainer.records.spec import CLASSES, NUM_CLASSES
from trainer.shared.errors import UserError

PRIOR_HELP = ("none (keep the training prior), train (the training rows' class shares), "
              "uniform, em (estimated from the test predictions by EM), bbse (estimated from "
              "the test predictions and the validation confusion), "
              "or explicit shares like A=0.58,B=0.03,C=0.34,D=0.05")


# The target prior `predict` uses unless told otherwise, and the share of the uniform
# prior mixed into it (balance_prior): aimed at the overall log loss (Kaggle's score),
# chosen by the worst case over the quality bench's physiologies and validations.  An
# estimate of the test prior (bbse, em) scored best where the model separates the
# classes well and far worst where it does not (a confused model's estimate can make it
# worse than a constant); the training rows' shares never did (README, "Model quality").
DEFAULT_PRIOR = "train"
DEFAULT_BALANCE = 0.0

BALANCE_HELP = ("the share of the uniform prior mixed into the target prior: 0 aims at the "
                "overall log loss alone, 1 at the balanced (mean per class) log loss alone, "
                "0.5 at the mean of the two; no effect with --prior none")


# The smallest share an estimate may give a class the model was trained on (see
# estimate_prior_em and estimate_prior_bbse).
MIN_ESTIMATED_SHARE = 0.02


class PriorEstimate(enum.Enum):
    """A target prior that only the test predictions can give, so parse_prior cannot
    return it as shares: the caller runs the estimate (`estimate_prior_em`,
    `estimate_prior_bbse`)."""
    EM = "em"
    BBSE = "bbse"


def parse_prior(text: Optional[str], train_rows: Optional[dict]
                ) -> Union[None, np.ndarray, PriorEstimate]:
    """The target prior named by `text` (see PRIOR_HELP): None for no correction, a
    PriorEstimate for `em` or `bbse`, otherwise the shares (summing to 1).  `train_rows`:
    rows per class of the model's training split (what `train` means), if known."""
    if text is None or text == "none":
        return None
    if text in {e.value for e in PriorEstimate}:
        return PriorEstimate(text)
    if text == "uniform":
        return np.full(NUM_CLASSES, 1.0 / NUM_CLASSES)
    if text == "train":
        if not train_rows:
            raise UserError("--prior train: neither the run (run.json train_rows_per_class) nor "
                            "the data's manifest (splits.train.rows_per_class) gives the training "
                            "rows' classes: give the shares, e.g. A=0.58,B=0.03,C=0.34,D=0.05")
        shares = np.array([float(train_rows.get(c, 0)) for c in CLASSES])
    else:
        shares = _explicit_shares(text)
    if shares.sum() <= 0:
        raise UserError(f"--prior {text!r}: shares sum to {shares.sum()}")
    return shares / shares.sum()


def _explicit_shares(text: str) -> np.ndarray:
    values = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in CLASSES:
            raise UserError(f"--prior {text!r}: {part!r} is not CLASS=SHARE ({PRIOR_HELP})")
        try:
            values[name] = float(value)
        except ValueError:
            raise UserError(f"--prior {text!r}: share {value!r} of {name} is not a number") from None
        if values[name] < 0:
            raise UserError(f"--prior {text!r}: share of {name} is negative")
    missing = [c for c in CLASSES if c not in values]
    if missing:
        raise UserError(f"--prior {text!r}: no share for {missing}")
    return np.array([values[c] for c in CLASSES])


def balance_prior(target: np.ndarray, balance: float) -> np.ndarray:
    """`target` with the share `balance` (0-1) of the uniform prior mixed in.

    The overall log loss weighs each class by its share of the test rows (q), the
    balanced one equally (u, uniform).  A weighted mean of the two, (1 - w) * overall
    + w * balanced, is the log loss of rows whose classes fall by the mixed prior
    m = (1 - w) q + w u, with the classes' signals unchanged, so the Bayes-optimal
    probabilities for it are the model's moved to m: with w = 0.5, to the mean of
    the test prior and the uniform.  Moving all the way to q (w = 0) makes every
    row of a rare class cost more, which only the overall figure rewards.
    """
    if not 0.0 <= balance <= 1.0:
        raise ValueError(f"balance must be from 0 to 1, got {balance}")
    return (1.0 - balance) * np.asarray(target, dtype=np.float64) + balance / NUM_CLASSES


def correct_prior(probs: np.ndarray, training_prior: np.ndarray,
                  target_prior: np.ndarray) -> np.ndarray:
    """Rows of `probs` moved from training_prior to target_prior (rows sum to 1).

    A class the model never trained on (training prior 0) keeps probability 0.
    """
    training_prior = np.asarray(training_prior, dtype=np.float64)
    ratio = np.divide(target_prior, training_prior, out=np.zeros(NUM_CLASSES),
                      where=training_prior > 0)
    corrected = probs * ratio
    return corrected / corrected.sum(axis=1, keepdims=True)


def estimate_prior_em(probs: np.ndarray, training_prior: np.ndarray, *,
                      weights: Optional[np.ndarray] = None, min_share: float = MIN_ESTIMATED_SHARE,
                      max_iterations: int = 1000,
                      tolerance: float = 1e-8) -> tuple[np.ndarray, int]:
    """The test set's class prior, estimated by EM from the model's posteriors alone
    (Saerens, Latinne & Decaestecker 2002); returns (prior, iterations used).

    `probs` [n, 4] are posteriors under `training_prior`.  Starting from the training
    prior, each iteration moves every row to the current estimate (E-step) and takes
    the (weighted) mean of the moved rows as the next estimate (M-step), until no
    share changes by `tolerance` or more; iterations == max_iterations means it did
    not converge.  A class with training prior 0 stays at 0 (correct_prior gives it
    no mass).  With calibrated posteriors this is the maximum-likelihood prior.

    Every trained class keeps at least `min_share` (the M-step is projected onto
    that floor).  On sessions unlike the training ones a model may hardly ever
    predict a class; plain EM then drives its share to 0 and every row of it costs
    ~34 nats of log loss (seen on the stand-in's LOFT sessions: B -> 3e-16).

    The E-step depends on each row through a non-linear function of its
    probabilities, so no fixed-size sum of rows is exact.  What keeps memory small is
    `weights` [n]: a row with weight w counts as w identical rows.  Prediction
    repeats each window's probabilities for the `stride` rows it covers, so the
    windows' probabilities with their row counts as weights give exactly the
    all-rows estimate from stride-times fewer rows (~1.1M for 18M rows at stride 16).
    A seeded random subsample of rows (weights None) approximates it, with
    sampling error shrinking as the subsample grows.
    """
    probs = np.asarray(probs, dtype=np.float64)
    training_prior = np.asarray(training_prior, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != NUM_CLASSES or probs.shape[0] == 0:
        raise ValueError(f"probs must be [n > 0, {NUM_CLASSES}], got {probs.shape}")
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != probs.shape[:1] or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"weights must be [{probs.shape[0]}], non-negative, not all 0")
    prior = training_prior / training_prior.sum()
    floor = np.where(training_prior > 0, min_share, 0.0)
    for iteration in range(1, max_iterations + 1):
        updated = _with_floor(np.average(correct_prior(probs, training_prior, prior), axis=0,
                                         weights=weights), floor)
        change = np.abs(updated - prior).max()
        prior = updated
        if change < tolerance:
            return prior, iteration
    return prior, max_iterations


def soft_confusion(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """[true class, predicted class]: the mean predicted probabilities of each class's
    rows (a row of zeros for a class without rows)."""
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES))
    np.add.at(confusion, np.asarray(labels), np.asarray(probs, dtype=np.float64))
    counts = np.bincount(labels, minlength=NUM_CLASSES)[:, None]
    return np.divide(confusion, counts, out=np.zeros_like(confusion), where=counts > 0)


def estimate_prior_bbse(mean_probs: np.ndarray, confusion: np.ndarray, *,
                        min_share: float = MIN_ESTIMATED_SHARE) -> np.ndarray:
    """The test set's class prior by black-box shift estimation (Lipton, Wang & Smola
    2018, "Detecting and correcting for label shift with black box predictors"), with
    soft predictions.

    Under label shift a class's rows look the same in validation and test, so the
    model's mean test prediction `mean_probs` is the mix, by the test prior q, of the
    rows of `confusion` (soft_confusion on the validation split): mean_probs = C^T q.
    Unlike EM this does not assume calibrated probabilities: a model that calls a
    third of the A rows D on validation and on test alike is corrected for it.  The
    least-squares solution is clipped at 0, and every class validated on keeps at
    least `min_share` (as in estimate_prior_em).
    """
    present = np.asarray(confusion).sum(axis=1) > 0
    shares, *_ = np.linalg.lstsq(np.asarray(confusion, dtype=np.float64).T,
                                 np.asarray(mean_probs, dtype=np.float64), rcond=None)
    shares = np.where(present, np.clip(shares, 0.0, None), 0.0)
    if shares.sum() <= 0:
        shares = present / present.sum()
    return _with_floor(shares / shares.sum(), np.where(present, min_share, 0.0))


def _with_floor(shares: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """`shares` (summing to 1) with every share at least `floor`: the shares below it
    are raised to it and the others scaled down to make room."""
    low = np.zeros(shares.shape, bool)
    while True:
        low |= shares < floor
        free = 1.0 - floor[low].sum()
        shares = np.where(low, floor, shares * free / shares[~low].sum())
        if not (shares < floor - 1e-15).any():
            return shares
