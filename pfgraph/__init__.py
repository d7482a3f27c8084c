"""pfgraph: deep-learning energy reconstruction for particle-flow calorimetry.

Simulate a detector in the eta-phi plane, train image and point-cloud models on the same
events, and compare them on one common evaluation on the 56x56 truth grid.
"""

__version__ = "0.1.0"
