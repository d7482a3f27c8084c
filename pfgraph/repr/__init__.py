"""Representations of events (dense images, point clouds) and the shared grid adapter."""
