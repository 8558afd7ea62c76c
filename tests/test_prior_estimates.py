"""Estimates of the test set's class prior: EM (Saerens et al. 2002, `--prior em`) and
black-box shift estimation (Lipton et al. 2018, `--prior bbse`)."""
import numpy as np
import pytest

from trainer.prediction.prior import (MIN_ESTIMATED_SHARE, PRIOR_HELP, PriorEstimate, balance_prior,
                                      correct_prior, estimate_prior_bbse, estimate_prior_em,
                                      parse_prior, soft_confusion)
from trainer.shared.metrics import row_log_losses, softmax

TEST_PRIOR = np.array([0.88, 0.02, 0.06, 0.04])
UNIFORM = np.full(4, 0.25)
# Unit-variance 2-D Gaussian per class, on the corners of a square: overlapping
# enough that the prior matters, separated enough that EM can tell the classes apart.
MEANS = np.array([[0.0, 0.0], [2.5, 0.0], [0.0, 2.5], [2.5, 2.5]])


def calibrated_posteriors(training_prior: np.ndarray, n: int = 20_000, seed: int = 0
                          ) -> tuple[np.ndarray, np.ndarray]:
    """(posteriors under training_prior, labels) of rows drawn from TEST_PRIOR: exact
    Bayes posteriors, i.e. what a perfectly calibrated model trained on that prior says."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(4, size=n, p=TEST_PRIOR)
    x = MEANS[labels] + rng.standard_normal((n, 2))
    log_likelihood = -0.5 * ((x[:, None, :] - MEANS[None]) ** 2).sum(axis=-1)
    return softmax(log_likelihood + np.log(training_prior)), labels


def mean_log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(row_log_losses(probs, labels).mean())


def balanced_log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    """The mean over classes of each class's mean log loss."""
    losses = row_log_losses(probs, labels)
    return float(np.mean([losses[labels == c].mean() for c in range(4)]))


@pytest.mark.parametrize("training_prior", [UNIFORM, np.array([0.4, 0.3, 0.2, 0.1])])
def test_em_recovers_the_test_prior_and_lowers_log_loss(training_prior):
    probs, labels = calibrated_posteriors(training_prior)
    prior, iterations = estimate_prior_em(probs, training_prior)
    np.testing.assert_allclose(prior, TEST_PRIOR, atol=0.01)
    assert prior.sum() == pytest.approx(1.0)
    assert iterations < 1000

    em_loss = mean_log_loss(correct_prior(probs, training_prior, prior), labels)
    assert em_loss < mean_log_loss(probs, labels) - 0.1                     # no correction
    assert em_loss < mean_log_loss(correct_prior(probs, training_prior, UNIFORM), labels) - 0.1
    # As good as knowing the true prior.
    oracle = mean_log_loss(correct_prior(probs, training_prior, TEST_PRIOR), labels)
    assert em_loss == pytest.approx(oracle, abs=0.002)


def test_em_is_deterministic_and_reports_its_iterations():
    probs, _ = calibrated_posteriors(UNIFORM, n=5_000)
    prior, iterations = estimate_prior_em(probs, UNIFORM)
    again, iterations_again = estimate_prior_em(probs, UNIFORM)
    np.testing.assert_array_equal(prior, again)
    assert iterations == iterations_again
    assert 1 < iterations < 1000
    # Stopped early: the count is the cap, and the estimate is only part of the way there.
    capped, capped_iterations = estimate_prior_em(probs, UNIFORM, max_iterations=2)
    assert capped_iterations == 2
    assert np.abs(capped - prior).max() > 1e-3
    # A looser tolerance stops sooner.
    assert estimate_prior_em(probs, UNIFORM, tolerance=1e-3)[1] < iterations


def test_class_with_zero_training_prior_stays_zero():
    # A model that never trained on D still puts some mass on it; EM must not.
    training_prior = np.array([0.5, 0.25, 0.25, 0.0])
    probs, _ = calibrated_posteriors(UNIFORM, n=5_000)
    prior, iterations = estimate_prior_em(probs, training_prior)
    assert prior[3] == 0.0
    assert (prior[:3] > 0).all()
    assert prior.sum() == pytest.approx(1.0)
    assert iterations < 1000


def test_weights_count_a_row_that_many_times():
    # Windows' probabilities weighted by the rows each covers == every row's probabilities.
    probs, _ = calibrated_posteriors(UNIFORM, n=2_000)
    counts = np.random.default_rng(1).integers(0, 64, size=probs.shape[0])
    weighted, weighted_iterations = estimate_prior_em(probs, UNIFORM, weights=counts)
    repeated, repeated_iterations = estimate_prior_em(np.repeat(probs, counts, axis=0), UNIFORM)
    np.testing.assert_allclose(weighted, repeated, rtol=1e-9, atol=1e-12)
    assert weighted_iterations == repeated_iterations


def test_em_refuses_bad_input():
    probs, _ = calibrated_posteriors(UNIFORM, n=10)
    with pytest.raises(ValueError, match="probs must be"):
        estimate_prior_em(probs[:, :3], UNIFORM)
    with pytest.raises(ValueError, match="weights must be"):
        estimate_prior_em(probs, UNIFORM, weights=np.zeros(10))
    with pytest.raises(ValueError, match="weights must be"):
        estimate_prior_em(probs, UNIFORM, weights=np.ones(9))


def test_parse_prior_em_is_left_to_the_caller():
    manifest = None  # EM needs no training counts
    assert parse_prior("em", manifest) is PriorEstimate.EM
    assert "em" in PRIOR_HELP
    assert parse_prior("none", manifest) is None


def test_a_class_the_model_never_predicts_keeps_the_floor_share():
    """On sessions unlike the training ones a model may all but never predict a class;
    plain EM drives its share to ~0 (and every row of it to ~34 nats), the floor keeps
    it at MIN_ESTIMATED_SHARE."""
    probs, labels = calibrated_posteriors(UNIFORM)
    blind = probs.copy()
    blind[:, 1] = 1e-9  # never says B, though 2% of the rows are B
    blind /= blind.sum(axis=1, keepdims=True)
    plain, _ = estimate_prior_em(blind, UNIFORM, min_share=0.0)
    assert plain[1] < 1e-6
    floored, _ = estimate_prior_em(blind, UNIFORM)
    assert floored[1] == pytest.approx(MIN_ESTIMATED_SHARE)
    assert floored.min() >= MIN_ESTIMATED_SHARE - 1e-12 and floored.sum() == pytest.approx(1.0)
    b_rows = labels == 1
    assert mean_log_loss(correct_prior(blind, UNIFORM, floored)[b_rows], labels[b_rows]) < \
        mean_log_loss(correct_prior(blind, UNIFORM, plain)[b_rows], labels[b_rows]) - 5


def test_bbse_recovers_the_prior_of_a_model_that_confuses_classes():
    """A model that calls 40% of the A rows D (on validation and on test alike) makes EM
    overestimate D; black-box shift estimation corrects for the confusion."""
    rng = np.random.default_rng(3)
    confusion = np.array([[0.55, 0.03, 0.02, 0.40], [0.30, 0.20, 0.10, 0.40],
                          [0.02, 0.03, 0.93, 0.02], [0.08, 0.02, 0.00, 0.90]])

    def predictions(prior: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.choice(4, size=n, p=prior)
        draws = rng.gamma(confusion[labels] * 50 + 1e-3)  # a Dirichlet draw per row
        return draws / draws.sum(axis=1, keepdims=True), labels

    valid_probs, valid_labels = predictions(UNIFORM, 20_000)
    measured = soft_confusion(valid_probs, valid_labels)
    np.testing.assert_allclose(measured, confusion, atol=0.01)
    test_probs, _ = predictions(TEST_PRIOR, 50_000)
    bbse = estimate_prior_bbse(test_probs.mean(axis=0), measured)
    np.testing.assert_allclose(bbse, TEST_PRIOR, atol=0.015)
    em, _ = estimate_prior_em(test_probs, UNIFORM)
    assert em[3] > TEST_PRIOR[3] + 0.04  # EM takes the confused A rows for D
    assert np.abs(em - TEST_PRIOR).max() > 3 * np.abs(bbse - TEST_PRIOR).max()


def test_bbse_keeps_the_floor_and_ignores_classes_never_validated():
    confusion = np.eye(4)
    confusion[1] = 0.0  # no B rows in validation
    prior = estimate_prior_bbse(np.array([0.97, 0.0, 0.03, 0.0]), confusion)
    assert prior[1] == 0.0 and prior[3] == pytest.approx(MIN_ESTIMATED_SHARE)
    assert prior.sum() == pytest.approx(1.0)
    assert parse_prior("bbse", None) is PriorEstimate.BBSE


def test_balance_mixes_the_uniform_prior_into_the_target():
    np.testing.assert_allclose(balance_prior(TEST_PRIOR, 0.0), TEST_PRIOR)
    np.testing.assert_allclose(balance_prior(TEST_PRIOR, 1.0), UNIFORM)
    np.testing.assert_allclose(balance_prior(TEST_PRIOR, 0.5), (TEST_PRIOR + UNIFORM) / 2)
    assert balance_prior(TEST_PRIOR, 0.3).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="balance"):
        balance_prior(TEST_PRIOR, 1.5)


def test_half_balance_is_best_for_the_mean_of_overall_and_balanced_log_loss():
    """A calibrated model moved to the true test prior mixed half and half with the
    uniform scores the lowest mean of the two figures (prior.balance_prior); all the
    way to the test prior is best overall, the uniform best balanced."""
    probs, labels = calibrated_posteriors(UNIFORM, n=200_000)
    balances = [0.0, 0.25, 0.5, 0.75, 1.0]
    moved = [correct_prior(probs, UNIFORM, balance_prior(TEST_PRIOR, b)) for b in balances]
    overall = np.array([mean_log_loss(p, labels) for p in moved])
    balanced = np.array([balanced_log_loss(p, labels) for p in moved])
    assert balances[int(np.argmin(overall))] == 0.0
    assert balances[int(np.argmin(balanced))] == 1.0
    assert balances[int(np.argmin(overall + balanced))] == 0.5
    # Both figures are given something for it: against either end, the half-way prior
    # loses less on one figure than it gains on the other.
    assert (overall + balanced)[2] < min((overall + balanced)[0], (overall + balanced)[4]) - 0.05
