"""The stochastic detector simulation (paper mode by default) and Pythia 8 jet events."""
