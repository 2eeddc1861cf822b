"""Inference: load a run and predict on images."""
