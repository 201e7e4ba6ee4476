"""The torch step path: the LSTM step for B voices as plain torch operations.

The stepper uses it where the compiled kernel (``fast_step``) cannot run, and the tests hold the
kernel to it. It drives the same protocol as ``fast_step.FastNet``: ``reset``, ``advance`` (feed
the pending tokens of some voices), ``step`` (feed them and draw the next tokens) and the readout
tensors ``h``, ``c``, ``logits``, ``sampling``. (``reference.py`` is another thing: the original
equations in numpy, straight from the folk-rnn parameter layout.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

from instrument.model.controls import Stimulation
from instrument.model.network import FolkRNN

# Per layer (output keep, silence keep): None (the layer is whole), one mask over the units that
# every voice shares, or one row per voice of the stepper (voices, hidden).
Masks = list[Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]]
Stimuli = Union[Stimulation, Sequence[Stimulation]]  # one for every fed voice, or one each


class TorchNet:
    """The equations as torch ops on the stepper's buffers: the fallback where the kernel cannot
    be built, and what the fast path is tested against. ``pc_rows``: the vocabulary row of each
    pitch class (the stimulation's random pitch-class tokens)."""

    def __init__(self, model: FolkRNN, voices: int, pc_rows: np.ndarray, threads: int = 1):
        """``threads``: the most cores torch's pool may use, as the fast path's ``threads``: live,
        one, so a core stays free for the timing thread (torch's pool is the process's: it is only
        ever lowered here)."""
        if torch.get_num_threads() > threads:
            torch.set_num_threads(threads)
        self.voices = voices
        self.config = model.config
        self._weights = Weights.from_model(model)
        self._pc_rows = torch.as_tensor(pc_rows)

    @property
    def h(self) -> list[torch.Tensor]:
        return self._h

    @property
    def c(self) -> list[torch.Tensor]:
        return self._c

    @property
    def logits(self) -> torch.Tensor:
        return self._logits

    @property
    def sampling(self) -> torch.Tensor:
        return self._sampling

    def reset(self, voices: Sequence[int] | None) -> None:
        w = self._weights
        if voices is None:
            self._h = [h0.expand(self.voices, -1).clone() for h0 in w.h0]
            self._c = [c0.expand(self.voices, -1).clone() for c0 in w.c0]
            self._logits = torch.zeros(self.voices, self.config.vocab_size)
            self._sampling = torch.full((self.voices, self.config.vocab_size), 1.0 / self.config.vocab_size)
            return
        idx = torch.as_tensor(list(voices), dtype=torch.long)
        for layer in range(self.config.layers):
            self._h[layer][idx] = w.h0[layer]
            self._c[layer][idx] = w.c0[layer]

    def _input(self, pending, sampled, stim: Stimuli, pcs) -> torch.Tensor:
        """Layer 1's input: each fed voice's pending token (weighted when it was sampled), plus its
        stimulation's forced and random pitch-class tokens when it was sampled."""
        x = torch.zeros(len(pending), self.config.vocab_size)
        rows = torch.arange(len(pending))
        pending = torch.as_tensor(pending)
        sampled = torch.as_tensor(sampled)
        if isinstance(stim, Stimulation):
            weight = torch.where(sampled, torch.tensor(stim.sampled_weight), torch.tensor(1.0))
            x[rows, pending] = weight
            if not stim.is_plain and bool(sampled.any()):
                extra = torch.zeros_like(x)
                for token, w in stim.forced:
                    extra[:, token] += w
                if stim.random_pitch_class:
                    extra[rows, self._pc_rows[pcs]] += stim.random_pitch_class
                x += extra * sampled[:, None]
            return x
        x[rows, pending] = torch.tensor([s.sampled_weight if bool(f) else 1.0 for s, f in zip(stim, sampled)])
        extra = torch.zeros_like(x)  # built as the shared path builds it, so both sum alike
        for i, s in enumerate(stim):
            if bool(sampled[i]):
                for token, w in s.forced:
                    extra[i, token] += w
                if s.random_pitch_class:
                    extra[i, self._pc_rows[pcs[i]]] += s.random_pitch_class
        x += extra
        return x

    @torch.no_grad()
    def advance(self, sel, pending, sampled, stim: Stimuli, pcs, masks: Masks) -> None:
        every = sel is None
        idx = None if every else torch.as_tensor(sel, dtype=torch.long)
        w = self._weights
        x = self._input(pending, sampled, stim, pcs)
        for layer, (out_keep, silence_keep) in enumerate(masks):
            if not every:  # a mask per voice: the rows of the voices fed
                out_keep = out_keep[idx] if out_keep is not None and out_keep.dim() == 2 else out_keep
                silence_keep = silence_keep[idx] if silence_keep is not None and silence_keep.dim() == 2 else silence_keep
            h_prev = self._h[layer] if every else self._h[layer][idx]
            c_prev = self._c[layer] if every else self._c[layer][idx]
            gates = torch.addmm(w.bias[layer], x, w.w_ih_t[layer]).addmm_(h_prev, w.w_hh_t[layer])
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            if silence_keep is not None:
                h = h * silence_keep
            if every:
                self._h[layer], self._c[layer] = h, c
            else:
                self._h[layer][idx], self._c[layer][idx] = h, c
            x = h if out_keep is None else h * out_keep
        logits = torch.addmm(w.out_b, x, w.out_w_t)
        if every:
            self._logits = logits
        else:
            self._logits[idx] = logits

    def step(self, sel, pending, sampled, stim, pcs, masks, temperature, logit_bias, allowed_rows, rngs) -> np.ndarray:
        """Advance, then draw every selected voice's next token in one vectorised pass (float64):
        z = logits / T + bias (-inf where not allowed); T > 0: p = softmax(z) and the token is the
        first whose cumulative p exceeds u * total, u one uniform of the voice's own generator;
        T == 0: the argmax, drawing nothing. The kernel's fs_sample does the same per voice."""
        self.advance(sel, pending, sampled, stim, pcs, masks)
        logits = (self._logits if sel is None else self._logits[torch.as_tensor(sel, dtype=torch.long)]).double().numpy()
        n = len(logits)
        t = np.broadcast_to(np.asarray(temperature, dtype=np.float64), (n,))
        hot = t > 0
        z = np.where(hot[:, None], logits / np.where(hot, t, 1.0)[:, None], logits)
        if logit_bias is not None:
            z = z + np.broadcast_to(logit_bias, logits.shape)
        z = z + np.where(np.stack(allowed_rows), 0.0, -np.inf)
        z = z - z.max(axis=1, keepdims=True)
        probs = np.exp(z)
        probs /= probs.sum(axis=1, keepdims=True)
        cdf = np.cumsum(probs, axis=1)
        u = np.array([rngs[v].random() if hot[v] else 0.0 for v in range(n)])  # the one per-voice part: its generator
        drawn = (cdf <= (u * cdf[:, -1])[:, None]).sum(axis=1)
        greedy = np.argmax(z, axis=1)
        tokens = np.where(hot, drawn, greedy).astype(np.int64)
        if not hot.all():  # greedy: the distribution sampled from is all on the argmax
            cold = np.flatnonzero(~hot)
            probs[cold] = 0.0
            probs[cold, greedy[cold]] = 1.0
        sampling = torch.from_numpy(probs.astype(np.float32))
        if sel is None:
            self._sampling = sampling
        else:
            self._sampling[torch.as_tensor(sel, dtype=torch.long)] = sampling
        return tokens


@dataclass
class Weights:
    """The network's weights, transposed once for row-vector products on the live path."""

    w_ih_t: list[torch.Tensor]
    w_hh_t: list[torch.Tensor]
    bias: list[torch.Tensor]
    h0: list[torch.Tensor]
    c0: list[torch.Tensor]
    out_w_t: torch.Tensor
    out_b: torch.Tensor

    @classmethod
    def from_model(cls, model: FolkRNN) -> "Weights":
        f32 = lambda t: t.detach().to(torch.float32).contiguous()  # noqa: E731
        layers = list(model.layers)
        return cls(
            w_ih_t=[f32(l.w_ih.t()) for l in layers],
            w_hh_t=[f32(l.w_hh.t()) for l in layers],
            bias=[f32(l.bias) for l in layers],
            h0=[f32(l.h0) for l in layers],
            c0=[f32(l.c0) for l in layers],
            out_w_t=f32(model.out.weight.t()),
            out_b=f32(model.out.bias),
        )
