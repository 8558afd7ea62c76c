"""The run folder (config, metrics, checkpoints, the exported model) and its plots."""
