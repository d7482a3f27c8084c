"""Comparison reports across models and representations, and their plots (from evaluation outputs only)."""
