"""Evaluation: metrics over predicted probabilities."""
