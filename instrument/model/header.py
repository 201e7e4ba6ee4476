"""A tune's header (meter, then mode) drawn by the model: one rule for live play and ``generate``.

When the performer or the user does not choose them, the meter and the mode are sampled by the
network, among meter tokens only, then mode tokens only, at temperature 1 whatever temperature the
body is played at. The header is the tune's frame, not its melody: at temperature 1 the model
draws meters and modes in the proportions it learned from the corpus, so a greedy (temperature 0)
or a wild (temperature 3) body still comes in a plausible variety of frames, rather than every
tune in the likeliest one (4/4 major at 0) or rare ones as often as common ones (3/2 at 3).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from instrument.model import vocab
from instrument.model.controls import Controls
from instrument.model.vocab import TokenClass

HEADER_TEMPERATURE = 1.0
STAGE_BIAS = {
    "meter": np.where(vocab.class_mask(TokenClass.METER), 0.0, -np.inf),
    "mode": np.where(vocab.class_mask(TokenClass.MODE), 0.0, -np.inf),
}


def controls(stages: Sequence[str], body: Controls) -> Controls | list[Controls]:
    """The controls of a step in which voice v is at ``stages[v]``: 'meter' or 'mode' (its header
    is drawn, by the rule above: ``body``'s stimulation, ablation and guard, at temperature 1 among
    that stage's tokens) or anything else (its body, played with ``body``). One Controls where every
    voice shares it, else one per voice."""
    drawing = {stage: replace(body, temperature=HEADER_TEMPERATURE, logit_bias=STAGE_BIAS[stage])
               for stage in set(stages) if stage in STAGE_BIAS}
    if not drawing:
        return body
    per_voice = [drawing.get(stage, body) for stage in stages]
    return per_voice[0] if len(set(map(id, per_voice))) == 1 else per_voice
