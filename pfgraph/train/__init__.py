"""Training: one trainer for every model and representation, checkpoints, prediction."""
