"""Pretraining: strategy, optimizer, the distributed train step, checkpoints and summaries."""
