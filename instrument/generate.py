"""Offline generation: whole tunes from the stepper, many at a time as a batch of voices.

Shared by the ``generate`` command, the quality benchmark and the analyses, so that every
figure we report comes from the same sampling as what the user hears.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from instrument import fast_step, vocab
from instrument.errors import UsageError
from instrument.model import FolkRNN
from instrument.stepper import Stepper
from instrument.tunes import Tune
from instrument.vocab import TokenClass

_METER_ONLY = np.where(vocab.class_mask(TokenClass.METER), 0.0, -np.inf)
_MODE_ONLY = np.where(vocab.class_mask(TokenClass.MODE), 0.0, -np.inf)
_END = vocab.INDEX[vocab.END]


def parse_meter(text: str) -> str:
    """``'6/8'`` or ``'M:6/8'`` -> ``'6/8'``; anything else is a usage error naming the choices."""
    meter = text[2:] if text.startswith("M:") else text
    if meter not in vocab.METERS:
        raise UsageError(f"unknown meter {text!r}; choose from {', '.join(vocab.METERS)}")
    return meter


def parse_mode(text: str) -> str:
    """``'dor'``, ``'Cdor'`` or ``'K:Cdor'`` -> ``'dor'``; anything else is a usage error."""
    mode = text[2:] if text.startswith("K:") else text
    mode = mode[1:] if len(mode) == 4 and mode[0] == "C" else mode
    if mode not in vocab.MODES:
        raise UsageError(f"unknown mode {text!r}; choose from {', '.join(vocab.MODES)}")
    return mode


def parse_prompt(text: str) -> list[str]:
    """Space-separated tokens; an unknown one is a usage error naming the nearest valid tokens."""
    tokens = text.split()
    for token in tokens:
        if token not in vocab.INDEX:
            near = ", ".join(repr(t) for t in vocab.nearest(token))
            raise UsageError(f"unknown token {token!r} in the prompt; nearest valid tokens: {near}")
    return tokens


def generate_tunes(
    model: FolkRNN,
    count: int = 1,
    meter: str | None = None,
    mode: str | None = None,
    prompt: Sequence[str] = (),
    temperature: float = 1.0,
    seed: int | None = None,
    max_tokens: int = 1000,
    batch: int = 64,
    configure: Callable[[Stepper], None] | None = None,
    on_step: Callable[[Stepper, np.ndarray], None] | None = None,
    threads: int | None = None,
    backend: str = "fast",
) -> list[Tune]:
    """Generate ``count`` tunes, ``batch`` voices at a time.

    Meter and mode are forced when given, else the model chooses them (sampling only among
    meter, then mode tokens). Each batch is seeded from (seed, batch number), so the same
    arguments give the same tunes. ``configure`` may set further stepper controls (ablation,
    stimulation, bias); ``on_step`` sees every body step (for recording activations); a voice
    whose tune has ended is no longer computed, and its token reads ``</s>`` from then on.
    ``threads`` is the fast step's core count (default: both cores, this is offline work).
    """
    tunes: list[Tune] = []
    threads = fast_step.default_threads(offline=True) if threads is None else threads
    for number, start in enumerate(range(0, count, batch)):
        voices = min(batch, count - start)
        stepper = Stepper(
            model, voices=voices, seed=None if seed is None else [seed, number], threads=threads, backend=backend
        )
        stepper.temperature = temperature
        tunes += _generate_batch(stepper, meter, mode, list(prompt), max_tokens, configure, on_step)
    return tunes


def _generate_batch(stepper, meter, mode, prompt, max_tokens, configure, on_step) -> list[Tune]:
    voices = stepper.voices
    stepper.force(vocab.START)
    header: list[list[str]] = [[] for _ in range(voices)]
    for given, only in ((meter and vocab.meter_token(meter), _METER_ONLY), (mode and vocab.mode_token(mode), _MODE_ONLY)):
        if given:
            stepper.force(given)
            for h in header:
                h.append(given)
        else:
            stepper.logit_bias = only
            for h, t in zip(header, stepper.step()):
                h.append(vocab.TOKENS[t])
            stepper.logit_bias = None
    if prompt:
        stepper.force(prompt)
    if configure:
        configure(stepper)
    bodies = [list(prompt) for _ in range(voices)]
    ended = np.zeros(voices, dtype=bool)
    for _ in range(max_tokens):
        if ended.all():
            break
        if ended.any():  # only the voices still playing
            live = np.flatnonzero(~ended)
            tokens = np.full(voices, _END, dtype=np.int64)
            tokens[live] = stepper._step(live)
        else:
            tokens = stepper.step()
        if on_step:
            on_step(stepper, tokens)
        for v in np.flatnonzero(~ended):
            if tokens[v] == _END:
                ended[v] = True
            else:
                bodies[v].append(vocab.TOKENS[tokens[v]])
    return [Tune(vocab.meter_of(h[0]), vocab.mode_of(h[1]), body, ended=bool(e)) for h, body, e in zip(header, bodies, ended)]
