"""Offline generation: whole tunes from the stepper, many at a time as a batch of voices.

Shared by the ``generate`` command, the quality benchmark and the analyses, so that every
figure we report comes from the same sampling as what the user hears.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterator, Sequence

import numpy as np

from instrument.errors import UsageError, excerpt
from instrument.model import fast_step, header, vocab
from instrument.model.controls import PLAIN, Controls
from instrument.model.network import FolkRNN
from instrument.model.vocab import TokenClass
from instrument.model.stepper import Stepper
from instrument.music.tunes import Tune

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
            raise UsageError(f"unknown token {excerpt(token, 40)!r} in the prompt; nearest valid tokens: {near}")
        cls = vocab.TOKEN_CLASS[vocab.INDEX[token]]
        if cls in _NOT_IN_PROMPT:
            raise UsageError(f"{token!r} cannot be in the prompt: {_NOT_IN_PROMPT[cls]}")
    return tokens


# the prompt is the start of a tune's body: what frames a tune is given another way
_NOT_IN_PROMPT = {
    TokenClass.START: "every tune starts with it already; give only body tokens",
    TokenClass.END: "a tune ends when the model writes it (--max-tokens cuts it off)",
    TokenClass.METER: "give the meter with --meter, e.g. --meter 6/8",
    TokenClass.MODE: "give the mode with --mode, e.g. --mode dor",
}


def iter_tunes(
    model: FolkRNN,
    count: int = 1,
    meter: str | None = None,
    mode: str | None = None,
    prompt: Sequence[str] = (),
    temperature: float = 1.0,
    seed: int | None = None,
    max_tokens: int = 1000,
    batch: int = 64,
    controls: Controls = PLAIN,
    on_step: Callable[[Stepper, np.ndarray, np.ndarray], None] | None = None,
    threads: int | None = None,
    backend: str = "fast",
) -> Iterator[Tune]:
    """Generate ``count`` tunes, up to ``batch`` of them at a time as voices of one stepper; each
    is yielded, in order, as soon as it and the tunes before it are done (``generate -n 1000000``
    writes as it goes, and Ctrl-C keeps what was made).

    Continuous batching: when a tune ends, its voice starts the next tune at once, so the batch
    stays full until the last tunes (a batch that waits for its longest tune computes a third as
    much). Meter and mode are forced when given, else the model draws them (``header``: among
    meter, then mode tokens, at temperature 1). Tune k draws from its own generator seeded by (seed, k), and
    the step sums in the same order whatever the voices, so tune k is the same whatever
    ``batch`` is. ``controls`` steers every step as live play would (ablation, stimulation, logit
    bias, guard), its temperature replaced by ``temperature``; ``on_step(stepper, tokens, tunes)`` sees every step that
    sampled body tokens: ``tunes[v]`` is the number of the tune voice v wrote (-1 where it wrote
    none). ``threads`` is the fast step's core count (default: both cores, this is offline work).
    """
    if count < 1:
        return
    threads = fast_step.default_threads(offline=True) if threads is None else threads
    voices = min(batch, count)
    stepper = Stepper(model, voices=voices, seed=seed, threads=threads, backend=backend)
    body = controls if controls.temperature == temperature else replace(controls, temperature=temperature)
    yield from _Batch(stepper, count, seed, meter, mode, list(prompt), max_tokens, on_step, body).run()


def generate_tunes(model: FolkRNN, count: int = 1, *args: object, **options: object) -> list[Tune]:
    """``iter_tunes`` (the same arguments) as a list: every tune, once all are done."""
    return list(iter_tunes(model, count, *args, **options))


class _Batch:
    """The voices of one stepper writing ``count`` tunes; each voice moves through the stages
    meter -> mode -> body of one tune, then takes the next tune's number."""

    def __init__(self, stepper: Stepper, count: int, seed, meter, mode, prompt, max_tokens, on_step, controls: Controls):
        self.stepper, self.count, self.seed, self.controls = stepper, count, seed, controls
        self.meter = meter and vocab.meter_token(meter)
        self.mode = mode and vocab.mode_token(mode)
        self.prompt, self.max_tokens, self.on_step = prompt, max_tokens, on_step
        voices = stepper.voices
        self.stage = ["idle"] * voices
        self.tune = np.full(voices, -1, dtype=np.int64)
        self.header: list[list[str]] = [[] for _ in range(voices)]
        self.body: list[list[str]] = [[] for _ in range(voices)]
        self.next_tune = 0
        self.done: dict[int, Tune] = {}

    def start(self, v: int) -> None:
        """Voice ``v`` begins the next tune (or rests when none is left)."""
        if self.next_tune >= self.count:
            self.stage[v] = "idle"
            return
        k, self.next_tune = self.next_tune, self.next_tune + 1
        self.stepper.reset([v])
        self.stepper.reseed(v, None if self.seed is None else [self.seed, k])
        self.tune[v], self.header[v], self.body[v] = k, [], []
        if self.meter:
            self.stepper.force([vocab.START, self.meter], voices=[v], controls=self.controls)
            self.header[v].append(self.meter)
            self.after_meter(v)
        else:
            self.stepper.force([vocab.START], voices=[v])
            self.stage[v] = "meter"

    def after_meter(self, v: int) -> None:
        if self.mode:
            self.header[v].append(self.mode)
            self.stepper.force([self.mode, *self.prompt], voices=[v], controls=self.controls)
            self.begin_body(v, prompt_forced=True)
        else:
            self.stage[v] = "mode"

    def begin_body(self, v: int, prompt_forced: bool = False) -> None:
        if self.prompt and not prompt_forced:
            self.stepper.force(self.prompt, voices=[v], controls=self.controls)
        self.body[v] = list(self.prompt)
        self.stage[v] = "body"

    def finish(self, v: int, ended: bool) -> None:
        self.done[int(self.tune[v])] = Tune(
            vocab.meter_of(self.header[v][0]), vocab.mode_of(self.header[v][1]), self.body[v], ended=ended
        )
        self.tune[v] = -1
        self.start(v)

    def run(self) -> Iterator[Tune]:
        """The tunes in order, each as soon as it and every tune before it are done."""
        stepper = self.stepper
        given = 0
        for v in range(stepper.voices):
            self.start(v)
        while True:
            live = np.array([v for v, s in enumerate(self.stage) if s != "idle"], dtype=np.int64)
            if not len(live):
                break
            sel = None if len(live) == stepper.voices else live
            tokens = np.full(stepper.voices, _END, dtype=np.int64)
            tokens[live] = stepper.step(header.controls(self.stage, self.controls), sel)
            if self.on_step:
                writing = np.full(stepper.voices, -1, dtype=np.int64)
                body = [v for v in live if self.stage[v] == "body"]
                writing[body] = self.tune[body]
                if body:
                    self.on_step(stepper, tokens, writing)
            for v in live.tolist():
                token = vocab.TOKENS[tokens[v]]
                stage = self.stage[v]
                if stage == "meter":
                    self.header[v].append(token)
                    self.after_meter(v)
                elif stage == "mode":
                    self.header[v].append(token)
                    self.begin_body(v)
                elif tokens[v] == _END:
                    self.finish(v, ended=True)
                else:
                    self.body[v].append(token)
                    if len(self.body[v]) - len(self.prompt) >= self.max_tokens:
                        self.finish(v, ended=False)
            while given in self.done:
                yield self.done.pop(given)
                given += 1
