"""Comparison reports across models and representations, the demo, plots."""
