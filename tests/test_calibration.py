"""Temperature scaling (Guo et al. 2017)."""
import numpy as np
import pytest

from trainer.training.calibration import (MAX_TEMPERATURE, MIN_TEMPERATURE, apply_temperature,
                                          fit_temperature)
from trainer.shared.metrics import classification_metrics, row_log_losses, softmax

MEANS = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
IMBALANCED = np.array([0.88, 0.02, 0.06, 0.04])


def calibrated_logits(n: int, seed: int, prior: np.ndarray = np.full(4, 0.25)
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(logits whose softmax is the exact Bayes posterior, labels) for unit-variance
    2-D Gaussian classes drawn from `prior`: a perfectly calibrated model."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(4, size=n, p=prior)
    x = MEANS[labels] + rng.standard_normal((n, 2))
    return -0.5 * ((x[:, None, :] - MEANS[None]) ** 2).sum(axis=-1) + np.log(prior), labels


def log_loss(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(row_log_losses(softmax(logits), labels).mean())


def test_over_confident_model_gets_its_temperature_back():
    fit_logits, fit_labels = calibrated_logits(20_000, seed=0)
    val_logits, val_labels = calibrated_logits(20_000, seed=1)
    temperature = fit_temperature(3.0 * fit_logits, fit_labels)
    assert temperature == pytest.approx(3.0, rel=0.1)
    before = log_loss(3.0 * val_logits, val_labels)
    after = log_loss(apply_temperature(3.0 * val_logits, temperature), val_labels)
    assert after < before - 0.1
    assert after == pytest.approx(log_loss(val_logits, val_labels), abs=0.005)


def test_calibrated_model_keeps_temperature_one():
    logits, labels = calibrated_logits(20_000, seed=2)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, rel=0.05)


def test_class_weights_fit_the_balanced_loss():
    fit_logits, fit_labels = calibrated_logits(20_000, seed=3, prior=IMBALANCED)
    val_logits, val_labels = calibrated_logits(20_000, seed=4, prior=IMBALANCED)
    balanced = 1.0 / np.bincount(fit_labels, minlength=4)
    temperature = fit_temperature(3.0 * fit_logits, fit_labels, class_weights=balanced)
    assert MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE
    assert temperature != pytest.approx(fit_temperature(3.0 * fit_logits, fit_labels), rel=1e-3)

    def balanced_loss(logits):
        return classification_metrics(softmax(logits), val_labels)["balanced_log_loss"]

    assert balanced_loss(apply_temperature(3.0 * val_logits, temperature)) < \
        balanced_loss(3.0 * val_logits) - 0.1


@pytest.mark.parametrize("scale, bound", [(0.01, MIN_TEMPERATURE), (100.0, MAX_TEMPERATURE)])
def test_temperature_stays_within_bounds(scale, bound):
    # Best T would be `scale`, outside the search range: the fit stops at the bound.
    logits, labels = calibrated_logits(2_000, seed=5)
    temperature = fit_temperature(scale * logits, labels)
    assert MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE
    assert temperature == pytest.approx(bound, rel=1e-3)


def test_fit_is_deterministic_and_keeps_the_argmax():
    logits, labels = calibrated_logits(2_000, seed=6)
    temperature = fit_temperature(3.0 * logits, labels)
    assert fit_temperature(3.0 * logits, labels) == temperature
    scaled = apply_temperature(3.0 * logits, temperature)
    np.testing.assert_allclose(scaled, 3.0 * logits / temperature)
    np.testing.assert_array_equal(scaled.argmax(axis=1), logits.argmax(axis=1))


def test_fit_refuses_bad_input():
    logits, labels = calibrated_logits(10, seed=7)
    with pytest.raises(ValueError, match="logits must be"):
        fit_temperature(logits[:5], labels)
    with pytest.raises(ValueError, match="class_weights must be"):
        fit_temperature(logits, labels, class_weights=np.ones(3))
    with pytest.raises(ValueError, match="weight 0"):
        fit_temperature(logits, labels, class_weights=np.zeros(4))
