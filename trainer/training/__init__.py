"""The training loop and what it reports: calibration, TensorBoard summaries."""
