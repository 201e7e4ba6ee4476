"""Round trip of the corpus conversion: our note rules on the tokens vs abc2midi on the original.

A bounded sample keeps this quick: a fixed-seed draw of 3% of each default collection (at least
30 tunes), so the collections weigh roughly as in the corpus. The figure over every kept tune
comes from ``python bench/corpus_roundtrip.py``.
"""

from __future__ import annotations

import random

import pytest

from instrument.training import corpus, roundtrip
from instrument.music.abc_reader import TuneSkipped
from instrument.training.convert import convert

SHARE, AT_LEAST = 0.03, 30
SEED = 11
REQUIRED = 0.98

pytestmark = pytest.mark.skipif(not roundtrip.abc2midi_available(), reason="abc2midi is not installed")


def test_kept_tunes_sound_as_the_original_read_by_abc2midi():
    pairs = []
    rng = random.Random(SEED)
    for name in corpus.DEFAULT_COLLECTIONS:
        tunes = corpus.read_collection(name)
        for abc in rng.sample(tunes, min(len(tunes), max(AT_LEAST, round(SHARE * len(tunes))))):
            try:
                converted = convert(abc)
            except TuneSkipped:
                continue
            pairs.append((abc, converted.tune, converted.shift))
    assert len(pairs) > 300
    outcomes = roundtrip.check(pairs)
    bad = [o for o in outcomes if o.problem]
    agreement = 1 - len(bad) / len(outcomes)
    print(f"\nround trip: {len(outcomes) - len(bad)} / {len(outcomes)} sampled tunes agree ({100 * agreement:.1f}%)")
    for outcome in bad:
        print(f"  {outcome.source}: {outcome.problem}")
    assert agreement >= REQUIRED, "\n".join(f"{o.source}: {o.problem}" for o in bad)


def test_the_check_can_fail():
    """A converted tune with one wrong note must not pass."""
    tunes = corpus.read_collection("miscFolk")
    abc = tunes[0]
    converted = convert(abc)
    body = list(converted.tune.body)
    index = next(i for i, token in enumerate(body) if token in ("C", "D", "E", "F", "G", "A", "B", "c", "d", "e"))
    body[index] = "c'" if body[index] != "c'" else "d'"
    wrong = type(converted.tune)(converted.tune.meter, converted.tune.mode, body)
    right, broken = roundtrip.check([(abc, converted.tune, converted.shift), (abc, wrong, converted.shift)])
    assert right.problem is None
    assert broken.problem is not None and "onset" in broken.problem
