"""The live stepper: advances the network one token at a time while its controls change.

Playing live means the model must react between any two tokens: temperature and logit bias
shape the next sample, stimulation (multi-hot input) and ablation shape the next state
update. The stepper therefore feeds its pending token lazily, at the start of the next
``step()``, with the controls that step is given, so a change applies to the very next token.

Protocol::

    s = Stepper(model, voices=1, seed=1)
    s.force(["<s>", "M:6/8", "K:Cmaj"])   # a prompt, fed one-hot
    tok = s.step(Controls(temperature=0.8))   # sample the next token of every voice
    s.step([Controls(...), Controls(...)])    # or with one Controls per voice (voices=2)
    s.readout                             # h and c of every layer, logits, probabilities
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from instrument.model import fast_step, vocab
from instrument.model.controls import PLAIN, Ablation, Controls, Stimulation
from instrument.model.grammar import GrammarGuard
from instrument.model.network import FolkRNN
from instrument.model.torch_step import Masks, TorchNet

log = logging.getLogger(__name__)

_ANY = np.ones(vocab.SIZE, dtype=bool)
_NOT_HEADER = ~vocab.class_mask(vocab.TokenClass.START, vocab.TokenClass.METER, vocab.TokenClass.MODE)
_NO_BIAS = np.zeros(vocab.SIZE)


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
    """Steps ``voices`` independent lines of music as one batch, each steered by the ``Controls``
    (``instrument.model.controls``) handed to each step: one for every voice, or one per voice.

    ``backend`` "fast" (default) runs the compiled kernel of instrument.model.fast_step, falling back
    (with a logged warning saying why) to "torch" (``torch_step``, the equations as torch ops) where
    it cannot be built; ``backend`` and ``precision`` say which runs;
    ``threads`` (1 or 2) is how many cores the fast step uses; ``precision`` "bf16" or "fp16"
    stores the fast path's weights at half size (see fast_step.TOLERANCE); "auto" (default) uses
    fp16 only where it is exact (weights that are float16 values, as in the shipped model) and
    faster (few voices), so results never depend on it.

    Each voice draws from its own seeded generators (its samples, and its stimulation's random
    pitch classes), so voice 0 of any stepper with the same seed plays what a one-voice stepper
    plays, and ``reseed`` gives a voice the generators of another seed.
    """

    def __init__(
        self,
        model: FolkRNN,
        voices: int = 1,
        seed: int | Sequence[int] | None = None,
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
        voice_seeds = np.random.SeedSequence(seed).spawn(voices)
        self._rngs = [np.random.default_rng(s) for s in voice_seeds]  # one per voice: tune i of a batch is reproducible
        self._stim_rngs = [np.random.default_rng(s.spawn(1)[0]) for s in voice_seeds]
        self._masks_for: Ablation | None = None
        self._masks: Masks = []
        self._voice_masks_for: tuple[Ablation, ...] = ()
        self._voice_masks: Masks = []
        self._grammar = [GrammarGuard() for _ in range(voices)]
        self._guard_before: list[tuple] = [self._grammar[v].snapshot() for v in range(voices)]
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
        """Give one voice fresh generators: offline generation seeds each tune by its number,
        so a tune does not depend on which voice or batch wrote it."""
        sequence = np.random.SeedSequence(seed)
        self._rngs[voice] = np.random.default_rng(sequence)
        self._stim_rngs[voice] = np.random.default_rng(sequence.spawn(1)[0])

    def force(self, tokens: str | Sequence[str] | Sequence[Sequence[str]], voices: Sequence[int] | None = None,
              controls: Controls | Sequence[Controls] = PLAIN) -> None:
        """Make ``tokens`` the next tokens of the sequence instead of sampling them.

        A flat list is fed to every selected voice in turn; a list of lists gives each voice
        its own tokens (all the same length). Forced tokens are fed one-hot (stimulation is for
        the tokens the model chooses); ``controls``' ablation applies to every token fed here,
        the pending one included (one Controls, or one per voice of the stepper).
        """
        selected = list(range(self.voices)) if voices is None else list(voices)
        if isinstance(tokens, str):
            tokens = [tokens]
        per_voice = [list(tokens)] * len(selected) if tokens and isinstance(tokens[0], str) else [list(t) for t in tokens]
        if len(per_voice) != len(selected) or len({len(t) for t in per_voice}) > 1:
            raise ValueError("force() needs one token list per selected voice, all of one length")
        for position in range(len(per_voice[0]) if per_voice else 0):
            if all(self._pending[v] >= 0 for v in selected):
                self._advance(None if voices is None else selected, controls)
            elif any(self._pending[v] >= 0 for v in selected):
                raise ValueError("force() on voices of which only some have a pending token")
            for v, toks in zip(selected, per_voice):
                index = vocab.INDEX[toks[position]]
                self._pending[v] = index
                self._pending_sampled[v] = False
                self._grammar[v].push(index)

    def replace(self, voice: int, token: str) -> None:
        """Make ``token`` the token ``voice`` just sampled, before it is fed (the next ``step``
        feeds it, as its stimulation takes it): a follower's second eighth is turned into a
        passing note once the lead's next note is known (instrument/live/follow.py)."""
        if self._pending[voice] < 0:
            raise RuntimeError("replace() before a token was sampled")
        index = vocab.INDEX[token]
        grammar = self._grammar[voice]
        grammar.restore(self._guard_before[voice])
        grammar.push(index)
        self._pending[voice] = index

    def step(self, controls: Controls | Sequence[Controls] = PLAIN, voices: Sequence[int] | None = None) -> np.ndarray:
        """Feed the pending token of every voice (or of ``voices`` only), sample the next one and
        return the tokens, in ``voices`` order. ``controls``: one ``Controls`` for every voice, or
        a sequence of one per voice of the stepper (indexed by voice, whichever are stepped).
        Offline generation steps only the voices whose tune has not ended."""
        sel = None if voices is None else np.asarray(voices, dtype=np.int64)
        if sel is None:
            if not self._all_pending:
                if (self._pending < 0).any():
                    raise RuntimeError("step() before a first token: force(['<s>', ...]) first")
                self._all_pending = True
            pending, sampled, grammars, rngs = self._pending, self._pending_sampled, self._grammar, self._rngs
            fed = range(self.voices)
        else:
            if (self._pending[sel] < 0).any():
                raise RuntimeError("step() before a first token: force(['<s>', ...]) first")
            pending, sampled = self._pending[sel], self._pending_sampled[sel]
            fed = sel.tolist()
            grammars, rngs = [self._grammar[v] for v in fed], [self._rngs[v] for v in fed]
        one = _one(controls, self.voices)
        if one is not None:
            stim, masks = one.stimulation, self._ablation_masks(one.ablation)
            temperature, bias = one.temperature, one.logit_bias
            if one.guard:
                allowed = [g.allowed() for g in grammars]
            else:  # even unguarded, a tune's header is written once: no <s>, M: or K: inside a body
                allowed = [_NOT_HEADER if g.stage == "body" else _ANY for g in grammars]
        else:
            chosen = [controls[v] for v in fed]
            stim = _shared([c.stimulation for c in chosen])
            masks = self._per_voice_masks(controls)
            temperature = np.array([c.temperature for c in chosen])
            biases = [c.logit_bias for c in chosen]
            bias = None if all(b is None for b in biases) else np.stack([_NO_BIAS if b is None else b for b in biases])
            allowed = [g.allowed() if c.guard else (_NOT_HEADER if g.stage == "body" else _ANY)
                       for g, c in zip(grammars, chosen)]
        tokens = self._net.step(
            sel, pending, sampled, stim, self._pitch_classes(fed, sampled, stim), masks,
            temperature, bias, allowed, rngs,
        )
        if sel is None:
            self._pending[:] = tokens
            self._pending_sampled[:] = True
        else:
            self._pending[sel] = tokens
            self._pending_sampled[sel] = True
        for v, grammar, t in zip(fed, grammars, tokens.tolist()):
            self._guard_before[v] = grammar.snapshot()
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
    def _keep(self, ablation: Ablation, layer: int) -> np.ndarray | None:
        """1 for the units of ``layer`` the ablation keeps, 0 for those it cuts; None: all kept."""
        units = list(ablation.units.get(layer, ()))
        if not units:
            return None
        if not all(0 <= u < self.config.hidden for u in units):
            raise ValueError(f"ablation units of layer {layer + 1} are 0..{self.config.hidden - 1}, "
                             f"not {max(units, key=lambda u: abs(u - self.config.hidden / 2))}")
        keep = np.ones(self.config.hidden, dtype=np.float32)
        keep[np.asarray(units, dtype=np.int64)] = 0.0
        return keep

    def _ablation_masks(self, ablation: Ablation) -> Masks:
        """Per layer (output mask, silence mask) shared by every voice, rebuilt only when the
        ablation changes (a new value: they are immutable)."""
        if self._masks_for is not ablation:
            masks = []
            for layer in range(self.config.layers):
                keep = self._keep(ablation, layer)
                if keep is None:
                    masks.append((None, None))
                    continue
                keep = torch.from_numpy(keep)
                masks.append((keep, None) if ablation.mode == "output" else (None, keep))
            self._masks, self._masks_for = masks, ablation
        return self._masks

    def _per_voice_masks(self, controls: Sequence[Controls]) -> Masks:
        """Per layer (output mask, silence mask), one row per voice of the stepper (a voice whose
        ablation leaves the layer whole keeps every unit), or None where no voice cuts the layer
        that way; rebuilt only when some voice's ablation changed. Voices that share one ablation
        share its masks."""
        ablations = tuple(c.ablation for c in controls)
        if all(a is ablations[0] for a in ablations):  # one ablation (the header of a batch's tunes): shared masks
            return self._ablation_masks(ablations[0])
        if len(ablations) != len(self._voice_masks_for) or any(a is not b for a, b in zip(ablations, self._voice_masks_for)):
            masks = []
            for layer in range(self.config.layers):
                rows = {"output": None, "silence": None}
                for v, ablation in enumerate(ablations):
                    keep = self._keep(ablation, layer)
                    if keep is not None:
                        if rows[ablation.mode] is None:
                            rows[ablation.mode] = np.ones((self.voices, self.config.hidden), dtype=np.float32)
                        rows[ablation.mode][v] = keep
                masks.append(tuple(None if r is None else torch.from_numpy(r) for r in (rows["output"], rows["silence"])))
            self._voice_masks, self._voice_masks_for = masks, ablations
        return self._voice_masks

    def _advance(self, selected: Sequence[int] | None, controls: Controls | Sequence[Controls]) -> None:
        """Feed the pending tokens of ``selected`` voices (None: all) through the network."""
        sel = None if selected is None else np.asarray(list(selected), dtype=np.int64)
        pending = self._pending if sel is None else self._pending[sel]
        sampled = self._pending_sampled if sel is None else self._pending_sampled[sel]
        fed = range(self.voices) if sel is None else sel.tolist()
        one = _one(controls, self.voices)
        if one is not None:
            stim, masks = one.stimulation, self._ablation_masks(one.ablation)
        else:
            stim, masks = _shared([controls[v].stimulation for v in fed]), self._per_voice_masks(controls)
        self._net.advance(sel, pending, sampled, stim, self._pitch_classes(fed, sampled, stim), masks)

    def _pitch_classes(self, fed: Sequence[int], sampled: np.ndarray,
                       stim: Stimulation | Sequence[Stimulation]) -> np.ndarray | None:
        """The stimulation's random pitch class of each fed voice whose token was sampled, each
        drawn from that voice's own generator; None when no voice draws one."""
        if isinstance(stim, Stimulation):
            if stim.is_plain or not stim.random_pitch_class or not sampled.any():
                return None
            draws = [True] * len(sampled)
        else:
            draws = [bool(s.random_pitch_class) for s in stim]
            if not any(draws) or not sampled.any():
                return None
        out = np.zeros(len(sampled), dtype=np.int64)
        for i, v in enumerate(fed):
            if draws[i] and sampled[i]:
                out[i] = self._stim_rngs[v].integers(0, len(_PC_ROWS))
        return out


def _one(controls: Controls | Sequence[Controls], voices: int) -> Controls | None:
    """The one Controls every voice steps with, or None when the voices have their own."""
    if isinstance(controls, Controls):
        return controls
    if len(controls) != voices:
        raise ValueError(f"step() needs one Controls, or one per voice ({voices}), not {len(controls)}")
    first = controls[0]
    return first if all(c is first for c in controls) else None


def _shared(values: list):
    """One value where every voice has the same (the nets' faster path), else the list."""
    first = values[0]
    return first if all(v is first for v in values) else values


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
