"""``rnn``: the paper's GRU sequence-to-sequence model over eta rows.

The G eta rows are the time steps; each step's features are the four channels' rows
concatenated (4 x G; 224 on the paper's grid). A 2-layer GRU encoder reads the sequence; a 2-layer GRU decoder
starts from the encoder's final state, reads the encoder outputs and a linear layer maps each
step's state (224) to the G phi pixels of that row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pfgraph.errors import ConfigError
from pfgraph.geometry import PAPER_GRID_SIZE, check_grid_size
from pfgraph.models.common import (
    ImageModel,
    InputConfig,
    OutputActivation,
    init_output_bias,
    output_activation,
    parse_params,
)
from pfgraph.models.registry import register


@dataclass
class RNNParams:
    """Hyper-parameters of :class:`RowGRU`."""

    hidden: int = 224
    encoder_layers: int = 2
    decoder_layers: int = 2
    dropout: float = 0.0
    output: OutputActivation = "none"
    output_bias: float | None = None
    inputs: InputConfig = field(default_factory=InputConfig)
    #: Grid size G (eta rows, phi pixels per row): the trainer sets it from the training data and the
    #: checkpoint keeps it (checkpoints without it were trained on the paper's grid).
    grid: int = PAPER_GRID_SIZE

    def validate(self) -> None:
        """Check values."""
        try:
            check_grid_size(self.grid, "rnn.grid")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if self.hidden <= 0 or self.encoder_layers <= 0 or self.decoder_layers <= 0:
            raise ConfigError("rnn: hidden, encoder_layers and decoder_layers must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"rnn.dropout = {self.dropout}: expected 0 <= dropout < 1")


class RowGRU(ImageModel):
    """GRU encoder-decoder over the eta rows of the image."""

    def __init__(self, p: RNNParams) -> None:
        super().__init__(p.inputs)
        self.grid = p.grid
        features = self.features.out_channels * p.grid
        self.encoder = nn.GRU(features, p.hidden, p.encoder_layers, batch_first=True,
                              dropout=p.dropout if p.encoder_layers > 1 else 0.0)
        self.decoder = nn.GRU(p.hidden, p.hidden, p.decoder_layers, batch_first=True,
                              dropout=p.dropout if p.decoder_layers > 1 else 0.0)
        self.decoder_layers = p.decoder_layers
        self.head = nn.Sequential(nn.Linear(p.hidden, p.grid), output_activation(p.output))
        init_output_bias(self.head, p.output_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 4, G, G) -> (B, 1, G, G), G the grid the model was built for."""
        if x.shape[-2:] != (self.grid, self.grid):
            raise ValueError(f"rnn built for the {self.grid}x{self.grid} grid got inputs {tuple(x.shape)}")
        f = self.features(x)
        b, c, h, w = f.shape
        seq = f.permute(0, 2, 1, 3).reshape(b, h, c * w)  # step = eta row, features = channel rows
        enc_out, state = self.encoder(seq)
        # The decoder starts from the encoder's final state (its last layers if it has fewer).
        if state.shape[0] >= self.decoder_layers:
            init = state[-self.decoder_layers:]
        else:
            init = torch.cat([state, state[-1:].expand(self.decoder_layers - state.shape[0], -1, -1)], dim=0)
        dec_out, _ = self.decoder(enc_out, init.contiguous())
        return self.head(dec_out).unsqueeze(1)  # (B, 1, G rows, G phi)


@register("rnn", repr="image", takes_grid=True,
          description="GRU seq2seq over the G eta rows x 4G features, linear 224->G per step (paper)")
def build_rnn(config: Mapping[str, Any]) -> RowGRU:
    """Build ``rnn`` from its hyper-parameters."""
    return RowGRU(parse_params(RNNParams, config, "rnn"))
