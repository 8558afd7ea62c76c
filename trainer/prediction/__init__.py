"""Predict: per-row probabilities from a run's model, the prior correction, and scoring."""
