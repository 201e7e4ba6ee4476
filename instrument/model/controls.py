"""What steers a step of the network: the seeds' stimulation and ablation.

Owned by the model (nothing here knows of performances): live play, ``generate`` and ``analyze``
hand the stepper these values, and both step paths (``fast_step``, ``torch_step``) read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

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
