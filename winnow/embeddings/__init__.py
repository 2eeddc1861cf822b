"""Embeddings of trained models: pooled pre-logits features for feature heads, search and active learning."""
