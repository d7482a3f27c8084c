"""pfgraph/repr/static_graph.py: the numpy neighbour table users build for exported graph models
is pfgraph's own static graph (the loader's table, made global over the batch)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from pfgraph import geometry
from pfgraph.io.root import EventFiles
from pfgraph.repr import graph
from pfgraph.repr import static_graph as sg


def test_constants_are_pfgraphs() -> None:
    for size in geometry.GRID_SIZES:
        eta_c, phi_c, jitter = sg.grid_tables(size)
        np.testing.assert_array_equal(eta_c, geometry.grid(size).eta_centres)
        np.testing.assert_array_equal(phi_c, geometry.grid(size).phi_centres)
        np.testing.assert_array_equal(jitter, graph._tables(torch.device("cpu"), size)[2].numpy())
    assert sg.K == graph.STATIC_K and sg.PAPER_GRID_SIZE == geometry.PAPER_GRID_SIZE and sg.TIE_BREAK == graph.TIE_BREAK


def test_only_numpy_is_imported() -> None:
    tree = ast.parse(Path(sg.__file__).read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert names <= {"numpy", "__future__"}


def test_table_equals_the_loaders_on_simulated_events(events_file: Path) -> None:
    chunk = EventFiles(events_file).read(["npix", "pix_ieta", "pix_iphi"], stop=40)
    npix = np.asarray(chunk["npix"], dtype=np.int64)
    ieta = np.concatenate([np.asarray(x) for x in chunk["pix_ieta"]]).astype(np.int64)
    iphi = np.concatenate([np.asarray(x) for x in chunk["pix_iphi"]]).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(npix)])
    local = graph.static_neighbours((ieta * 56 + iphi).astype(np.int16), offsets, 56).astype(np.int64)
    want = np.where(local >= 0, local + np.repeat(offsets[:-1], npix)[:, None], -1)
    np.testing.assert_array_equal(sg.neighbour_table(ieta, iphi, npix), want)


def test_small_and_empty_events() -> None:
    ieta, iphi = np.array([3, 3, 10]), np.array([0, 55, 7])  # phi wraps: (3, 0) and (3, 55) are neighbours
    table = sg.neighbour_table(ieta, iphi, np.array([2, 0, 1]))
    assert table.shape == (3, sg.K)
    np.testing.assert_array_equal(table[:, :2], [[0, 1], [1, 0], [2, -1]])
    assert (table[:, 2:] == -1).all()
    with pytest.raises(ValueError, match="points"):
        sg.neighbour_table(ieta, iphi, np.array([1]))
