"""Representations of events (dense images, point clouds) and the shared grid adapter.

:mod:`pfgraph.repr.registry` names them (``@register_representation``); :mod:`pfgraph.repr.base`
defines the interface every representation implements and the normalisation contract.
"""
