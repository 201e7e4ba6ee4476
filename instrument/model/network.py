"""The folk-rnn v2 network: stacked LSTMs over one-hot tokens, softmax over the vocabulary.

Parameters are kept in the original model's shape (one bias per gate, learned initial
states per layer, gate order i, f, c, o) so that the published weights map onto them one to
one and the parameter count is the original's 5,599,881 at 3 x 512.
This module only trains and holds weights; playing one token at a time is the stepper's job.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from instrument.model import vocab


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the network. The defaults are the folk-rnn v2 architecture."""

    vocab_size: int = vocab.SIZE
    layers: int = 3
    hidden: int = 512
    dropout: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = {k: data[k] for k in ("vocab_size", "layers", "hidden", "dropout") if k in data}
        return cls(**known)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of every tensor of ``FolkRNN(self).state_dict()``, known without building it
        (a checkpoint is checked against this first: a config of 300 layers must not allocate
        gigabytes before it is found wrong)."""
        H, V = self.hidden, self.vocab_size
        out: dict[str, tuple[int, ...]] = {}
        for i in range(self.layers):
            width = V if i == 0 else H
            out |= {f"layers.{i}.w_ih": (4 * H, width), f"layers.{i}.w_hh": (4 * H, H), f"layers.{i}.bias": (4 * H,),
                    f"layers.{i}.h0": (H,), f"layers.{i}.c0": (H,)}
        return out | {"out.weight": (V, H), "out.bias": (V,)}


class LSTMLayer(nn.Module):
    """One LSTM layer without peepholes, with a learned initial state (h0, c0)."""

    def __init__(self, input_size: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.w_ih = nn.Parameter(torch.empty(4 * hidden, input_size))
        self.w_hh = nn.Parameter(torch.empty(4 * hidden, hidden))
        self.bias = nn.Parameter(torch.empty(4 * hidden))
        self.h0 = nn.Parameter(torch.zeros(hidden))
        self.c0 = nn.Parameter(torch.zeros(hidden))
        self.register_buffer("_no_bias", torch.zeros(4 * hidden), persistent=False)

    def reset_parameters(self, forget_bias: float = 5.0) -> None:
        """folk-rnn v2 initialisation: Glorot input weights, orthogonal recurrence, forget bias 5."""
        H = self.hidden
        bound = math.sqrt(6.0 / (self.w_ih.shape[1] + H))
        with torch.no_grad():
            nn.init.uniform_(self.w_ih, -bound, bound)
            for gate in range(4):
                nn.init.orthogonal_(self.w_hh[gate * H : (gate + 1) * H])
            self.bias.zero_()
            self.bias[H : 2 * H] = forget_bias
            self.h0.zero_()
            self.c0.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the layer over a whole batch ``x`` of shape (batch, time, input)."""
        batch = x.shape[0]
        h0 = self.h0.expand(1, batch, self.hidden).contiguous()
        c0 = self.c0.expand(1, batch, self.hidden).contiguous()
        weights = [self.w_ih, self.w_hh, self.bias, self._no_bias]
        out, _, _ = torch.lstm(x, (h0, c0), weights, True, 1, 0.0, self.training, False, True)
        return out


class FolkRNN(nn.Module):
    """Stacked LSTM language model over the 137 folk-rnn tokens."""

    def __init__(self, config: ModelConfig = ModelConfig()):
        super().__init__()
        self.config = config
        sizes = [config.vocab_size] + [config.hidden] * config.layers
        self.layers = nn.ModuleList(LSTMLayer(sizes[i], sizes[i + 1]) for i in range(config.layers))
        self.out = nn.Linear(config.hidden, config.vocab_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in self.layers:
            layer.reset_parameters()
        bound = math.sqrt(6.0 / (self.config.hidden + self.config.vocab_size))
        with torch.no_grad():
            nn.init.uniform_(self.out.weight, -bound, bound)
            self.out.bias.zero_()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits (batch, time, vocab) predicting each next token, for training and scoring.

        Dropout follows every LSTM layer, as in the original recipe (config5).
        """
        x = F.one_hot(tokens, self.config.vocab_size).to(self.out.weight.dtype)
        for layer in self.layers:
            x = layer(x)
            x = F.dropout(x, self.config.dropout, self.training)
        return self.out(x)

    def parameter_count(self, initial_state: bool = False) -> int:
        """Weights and biases (5,599,881 at 3 x 512, the published figure); ``initial_state``
        adds the learned h0 and c0, which the original count leaves out."""
        return sum(
            p.numel() for name, p in self.named_parameters() if initial_state or not name.endswith(("h0", "c0"))
        )


def loss_per_tune(model: FolkRNN, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood summed over each tune's tokens (padding excluded): shape (batch,).

    ``tokens`` is (batch, time) with each tune from ``<s>`` to ``</s>``; ``lengths`` counts them.
    """
    logits = model(tokens[:, :-1])
    nll = F.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], reduction="none")
    steps = torch.arange(tokens.shape[1] - 1, device=tokens.device)
    mask = steps[None, :] < (lengths[:, None] - 1)
    return (nll * mask).sum(dim=1)
