"""The live stepper: advances the network one token at a time while its controls change.

Playing live means the model must react between any two tokens: temperature and logit bias
shape the next sample, stimulation (multi-hot input) and ablation shape the next state
update. The stepper therefore feeds its pending token lazily, at the start of the next
``step()``, so whatever was set in between applies to the very next token sampled.

Protocol::

    s = Stepper(weights, voices=1, seed=1)
    s.force(["<s>", "M:6/8", "K:Cmaj"])   # a prompt, fed one-hot
    tok = s.step()                        # sample the next token of every voice
    s.readout                             # h and c of every layer, logits, probabilities
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from instrument.model import fast_step, vocab
from instrument.model.controls import Ablation, Stimulation
from instrument.model.grammar import GrammarGuard
from instrument.model.network import FolkRNN
from instrument.model.torch_step import TorchNet

log = logging.getLogger(__name__)

_ANY = np.ones(vocab.SIZE, dtype=bool)
_NOT_HEADER = ~vocab.class_mask(vocab.TokenClass.START, vocab.TokenClass.METER, vocab.TokenClass.MODE)


@dataclass
class Readout:
    """What the network did in the last advance, per voice: each layer's h and c
    (voices, hidden), the raw logits, and the distribution the last token was drawn from
    after temperature, bias and guard (voices, vocab). ``probs`` is the model's own output
    distribution, softmax(logits). Views of the stepper's buffers: copy what you keep."""

    h: list[torch.Tensor]
    c: list[torch.Tensor]
    logits: torch.Tensor
    sampling: torch.Tensor

    @property
    def probs(self) -> torch.Tensor:
        return torch.softmax(self.logits, dim=-1)


class Stepper:
    """Steps ``voices`` independent tunes as one batch, with live controls.

    Controls (plain attributes, change them between any two steps):
    ``temperature`` (float or one per voice; 0 means greedy argmax), ``stimulation``
    (Stimulation), ``ablation`` (Ablation), ``logit_bias`` (None or an array over the
    vocabulary, or one per voice), ``guard`` (mask tokens that cannot follow).
    The sampled distribution is ``softmax(logits / T + logit_bias)``.

    ``backend`` "fast" (default) runs the compiled kernel of instrument.model.fast_step, falling back
    (with a logged warning saying why) to "torch" (``torch_step``, the equations as torch ops) where
    it cannot be built; ``backend`` and ``precision`` say which runs;
    ``threads`` (1 or 2) is how many cores the fast step uses; ``precision`` "bf16" or "fp16"
    stores the fast path's weights at half size (see fast_step.TOLERANCE); "auto" (default) uses
    fp16 only where it is exact (weights that are float16 values, as in the shipped model) and
    faster (few voices), so results never depend on it.
    """

    def __init__(
        self,
        model: FolkRNN,
        voices: int = 1,
        seed: int | Sequence[int] | None = None,
        guard: bool = False,
        *,
        backend: str = "fast",
        threads: int | None = None,
        precision: str = "auto",
    ):
        self.voices = voices
        self.config = model.config
        self._net = _make_net(model, voices, backend, threads, precision)
        self.backend = "fast" if isinstance(self._net, fast_step.FastNet) else "torch"
        self.precision = self._net.wt.precision if self.backend == "fast" else "float32"
        self.temperature: float | Sequence[float] = 1.0
        self.stimulation = Stimulation()
        self.ablation = Ablation()
        self.logit_bias: np.ndarray | None = None
        self.guard = guard
        *voice_seeds, stim_seed = np.random.SeedSequence(seed).spawn(voices + 1)
        self._rngs = [np.random.default_rng(s) for s in voice_seeds]  # one per voice: tune i of a batch is reproducible
        self._stim_rng = np.random.default_rng(stim_seed)
        self._masks_for: Ablation | None = None
        self._grammar = [GrammarGuard() for _ in range(voices)]
        self.reset()

    # -- state -----------------------------------------------------------------------------
    def reset(self, voices: Sequence[int] | None = None) -> None:
        """Return voices (default all) to the learned initial state, with nothing pending."""
        self._net.reset(voices)
        self._all_pending = False  # known true again at the first step that finds no voice without a token
        if voices is None:
            self._pending = np.full(self.voices, -1, dtype=np.int64)
            self._pending_sampled = np.zeros(self.voices, dtype=bool)
            self._grammar = [GrammarGuard() for _ in range(self.voices)]
            return
        for v in voices:
            self._pending[v] = -1
            self._pending_sampled[v] = False
            self._grammar[v] = GrammarGuard()

    def reseed(self, voice: int, seed: int | Sequence[int] | None) -> None:
        """Give one voice a fresh generator: offline generation seeds each tune by its number,
        so a tune does not depend on which voice or batch wrote it."""
        self._rngs[voice] = np.random.default_rng(seed)

    def force(self, tokens: str | Sequence[str] | Sequence[Sequence[str]], voices: Sequence[int] | None = None) -> None:
        """Make ``tokens`` the next tokens of the sequence instead of sampling them.

        A flat list is fed to every selected voice in turn; a list of lists gives each voice
        its own tokens (all the same length). Forced tokens are fed one-hot: stimulation is
        for the tokens the model chooses.
        """
        selected = list(range(self.voices)) if voices is None else list(voices)
        if isinstance(tokens, str):
            tokens = [tokens]
        per_voice = [list(tokens)] * len(selected) if tokens and isinstance(tokens[0], str) else [list(t) for t in tokens]
        if len(per_voice) != len(selected) or len({len(t) for t in per_voice}) > 1:
            raise ValueError("force() needs one token list per selected voice, all of one length")
        for position in range(len(per_voice[0]) if per_voice else 0):
            if all(self._pending[v] >= 0 for v in selected):
                self._advance(None if voices is None else selected)
            elif any(self._pending[v] >= 0 for v in selected):
                raise ValueError("force() on voices of which only some have a pending token")
            for v, toks in zip(selected, per_voice):
                index = vocab.INDEX[toks[position]]
                self._pending[v] = index
                self._pending_sampled[v] = False
                self._grammar[v].push(index)

    def step(self, voices: Sequence[int] | None = None) -> np.ndarray:
        """Feed the pending token of every voice (or of ``voices`` only), sample the next one and
        return the tokens, in ``voices`` order. Offline generation steps only the voices whose tune
        has not ended."""
        sel = None if voices is None else np.asarray(voices, dtype=np.int64)
        if sel is None:
            if not self._all_pending:
                if (self._pending < 0).any():
                    raise RuntimeError("step() before a first token: force(['<s>', ...]) first")
                self._all_pending = True
            pending, sampled, grammars, rngs = self._pending, self._pending_sampled, self._grammar, self._rngs
            temperature, bias = self.temperature, self.logit_bias
        else:
            if (self._pending[sel] < 0).any():
                raise RuntimeError("step() before a first token: force(['<s>', ...]) first")
            pending, sampled = self._pending[sel], self._pending_sampled[sel]
            grammars, rngs = [self._grammar[v] for v in sel], [self._rngs[v] for v in sel]
            temperature = self.temperature
            if not isinstance(temperature, (int, float)):
                temperature = np.broadcast_to(np.asarray(temperature, dtype=np.float64), (self.voices,))[sel]
            bias = self.logit_bias
            if bias is not None and np.ndim(bias) == 2:
                bias = np.broadcast_to(bias, (self.voices, self.config.vocab_size))[sel]
        if self.guard:
            allowed = [g.allowed() for g in grammars]
        else:  # even unguarded, a tune's header is written once: no <s>, M: or K: inside a body
            allowed = [_NOT_HEADER if g.stage == "body" else _ANY for g in grammars]
        tokens = self._net.step(
            sel, pending, sampled, self.stimulation, self._pitch_classes(sampled), self._ablation_masks(),
            temperature, bias, allowed, rngs,
        )
        if sel is None:
            self._pending[:] = tokens
            self._pending_sampled[:] = True
        else:
            self._pending[sel] = tokens
            self._pending_sampled[sel] = True
        for grammar, t in zip(grammars, tokens.tolist()):
            grammar.push(t)
        return tokens

    @property
    def readout(self) -> Readout:
        net = self._net
        return Readout(net.h, net.c, net.logits, net.sampling)

    @property
    def pending(self) -> np.ndarray:
        """The token each voice will feed at its next advance (-1 for none)."""
        return self._pending.copy()

    # -- the network -----------------------------------------------------------------------
    def _ablation_masks(self) -> list[tuple[torch.Tensor | None, torch.Tensor | None]]:
        """Per layer (output mask, silence mask), rebuilt only when the ablation changes."""
        if self._masks_for is not self.ablation:
            masks = []
            for layer in range(self.config.layers):
                units = list(self.ablation.units.get(layer, ()))
                if not units:
                    masks.append((None, None))
                    continue
                if not all(0 <= u < self.config.hidden for u in units):
                    raise ValueError(f"ablation units of layer {layer + 1} are 0..{self.config.hidden - 1}, "
                                     f"not {max(units, key=lambda u: abs(u - self.config.hidden / 2))}")
                keep = torch.ones(self.config.hidden)
                keep[torch.as_tensor(units, dtype=torch.long)] = 0.0
                masks.append((keep, None) if self.ablation.mode == "output" else (None, keep))
            self._masks = masks
            self._masks_for = self.ablation
        return self._masks

    def _advance(self, selected: Sequence[int] | None) -> None:
        """Feed the pending tokens of ``selected`` voices (None: all) through the network."""
        sel = None if selected is None else np.asarray(list(selected), dtype=np.int64)
        pending = self._pending if sel is None else self._pending[sel]
        sampled = self._pending_sampled if sel is None else self._pending_sampled[sel]
        self._net.advance(sel, pending, sampled, self.stimulation, self._pitch_classes(sampled), self._ablation_masks())

    def _pitch_classes(self, sampled: np.ndarray) -> np.ndarray | None:
        """The stimulation's random pitch class of each fed voice (drawn whenever any was sampled)."""
        stim = self.stimulation
        if not stim.is_plain and stim.random_pitch_class and sampled.any():
            return self._stim_rng.integers(0, len(_PC_ROWS), size=len(sampled))
        return None


_PC_ROWS = np.array([vocab.INDEX[t] for t in vocab.PITCH_CLASS_TOKENS])


BACKENDS = ("fast", "torch")


def _make_net(model: FolkRNN, voices: int, backend: str, threads: int | None, precision: str):
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if precision != "auto" and precision not in fast_step.PRECISIONS:
        raise ValueError(f"precision must be 'auto' or one of {tuple(fast_step.PRECISIONS)}, not {precision!r}")
    threads = fast_step.default_threads() if threads is None else threads
    if threads not in (1, 2):
        raise ValueError(f"threads must be 1 or 2, not {threads!r}")
    if backend == "fast":
        lib = fast_step.load()
        if lib is not None:
            precision = fast_step.choose_precision(model, voices, precision)
            return fast_step.FastNet(lib, fast_step.packed(model, precision), voices, threads, _PC_ROWS)
        if precision not in ("float32", "auto"):  # half-size weights are the kernel's: float32 is exact
            log.warning("precision %s needs the fast step, which is unavailable; the torch path runs in float32", precision)
    return TorchNet(model, voices, _PC_ROWS, threads)
