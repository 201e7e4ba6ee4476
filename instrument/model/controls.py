"""What steers one step of the network: ``Controls`` (temperature, logit bias, the seeds'
stimulation and ablation, the grammar guard), one immutable value handed to every step.

Owned by the model (nothing here knows of performances): live play, ``generate`` and ``analyze``
hand ``Stepper.step`` these values (as nanoGPT's ``generate`` takes its controls as arguments),
never attributes set on the stepper before a step, so no step can see half of a change. A step
takes one ``Controls`` for every voice, or one per voice: each voice (a line of music, one row
of the stepper's batch) then plays with its own temperature, stimulation and ablation, in both
step paths (``fast_step``, ``torch_step``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from instrument.model import vocab

ABLATION_MODES = ("output", "silence")


@dataclass(frozen=True)
class Stimulation:
    """The multi-hot input of the seeds' "stimulation" experiments.

    The fed vector is ``sampled_weight * onehot(sampled) + sum(w * onehot(t) for t, w in forced)``
    and, when ``random_pitch_class`` > 0, plus that weight on a pitch-class token drawn
    afresh each step from the stepper's own seeded generator.
    """

    sampled_weight: float = 1.0
    forced: tuple[tuple[int, float], ...] = ()
    random_pitch_class: float = 0.0
    # (a voice's random pitch classes come from its own generator: voices do not share a stream)

    @classmethod
    def seed_two_hot(cls, weight: float = 0.3) -> "Stimulation":
        """The seed experiment's preset (docs/design.md §3): 0.7 on the generated token, 0.3 on a random pitch class."""
        return cls(sampled_weight=1.0 - weight, random_pitch_class=weight)

    @classmethod
    def tokens(cls, tokens: Iterable[str], weight: float, sampled_weight: float = 1.0) -> "Stimulation":
        """Force a fixed set of tokens (e.g. the keys held on a keyboard) with one weight each."""
        return cls(sampled_weight=sampled_weight, forced=tuple((vocab.INDEX[t], weight) for t in tokens))

    @property
    def is_plain(self) -> bool:
        return self.sampled_weight == 1.0 and not self.forced and self.random_pitch_class == 0.0


@dataclass(frozen=True)
class Ablation:
    """Units cut per layer (0-based layer index -> unit indices) and how they are cut.

    ``output`` cuts a unit's outgoing connections (to the next layer or the softmax, the seed
    experiment of docs/design.md §3); the unit's own recurrence still sees it. ``silence`` holds its h at zero
    everywhere, recurrence included.
    """

    units: Mapping[int, Sequence[int]] = field(default_factory=dict)
    mode: str = "output"

    def __post_init__(self) -> None:
        if self.mode not in ABLATION_MODES:
            raise ValueError(f"ablation mode must be one of {ABLATION_MODES}, not {self.mode!r}")

    @property
    def size(self) -> int:
        return sum(len(u) for u in self.units.values())


@dataclass(frozen=True, eq=False)
class Controls:
    """Everything that steers one step of one voice; immutable (``dataclasses.replace`` makes a
    changed copy), so a value handed to the stepper can be shared by any number of steps and voices.

    ``temperature``: 0 is greedy (argmax). ``logit_bias``: None or an array over the vocabulary
    (read-only; ``-inf`` forbids a token): the sampled distribution is
    ``softmax(logits / temperature + logit_bias)``. ``stimulation`` and ``ablation`` shape how the
    voice's pending token is fed (docs/design.md §3). ``guard``: mask the tokens the grammar says
    cannot follow (``grammar.GrammarGuard``); without it a tune's header is still written once.
    """

    temperature: float = 1.0
    logit_bias: np.ndarray | None = None
    stimulation: Stimulation = Stimulation()
    ablation: Ablation = Ablation()
    guard: bool = False

    def __post_init__(self) -> None:
        t = float(self.temperature)
        if not (math.isfinite(t) and t >= 0):
            raise ValueError(f"temperature must be a finite number >= 0, not {self.temperature!r}")
        object.__setattr__(self, "temperature", t)
        if self.logit_bias is not None:
            bias = np.array(self.logit_bias, dtype=np.float64)  # a copy: the caller may reuse its array
            if bias.shape != (vocab.SIZE,):
                raise ValueError(f"logit_bias must have one value per token ({vocab.SIZE}), not shape {bias.shape}")
            bias.flags.writeable = False
            object.__setattr__(self, "logit_bias", bias)


PLAIN = Controls()  # temperature 1, nothing else: the model as trained

