"""The composer of a band (the shipped model): every network voice in one batched step, the
follower's part as long as the lead's, chords a beat group behind the lead, the drone released
at its tune's end, a held bar looping every voice but the drone, a score with a V: per voice."""

from __future__ import annotations

import pytest

from controllers.patch import find_ensemble
from instrument.cli.options import ensemble_params
from instrument.live.composer import Composer, Release
from instrument.live.params import INSTRUMENT_PARAMS
from instrument.model import checkpoint
from instrument.music.band import BandTune
from instrument.music.beat_groups import group_quarters


@pytest.fixture(scope="module")
def model():
    return checkpoint.load_or_default(None)[0]


def band(model, name: str, seed: int = 1):
    ensemble = find_ensemble(name)
    params = ensemble_params(INSTRUMENT_PARAMS, ensemble)
    return Composer(model, params, seed=seed, ensemble=ensemble), params


def until_tune_ends(composer, most: int = 4000) -> list:
    out = []
    for _ in range(most):
        out += composer.next_notes()
        if composer.finished:
            return out
    raise AssertionError("no tune ended")


def test_a_duo_s_lead_is_the_solo_s_and_its_follower_plays_every_lead_token(model):
    duo, _ = band(model, "duo", seed=4)
    solo, _ = band(model, "solo", seed=4)
    notes = until_tune_ends(duo)
    lead = [(n.beat, n.pitch) for n in notes if n.voice == 1]
    alone = [(n.beat, n.pitch) for n in until_tune_ends(solo)]
    assert lead == alone  # a follower beside it changes nothing of the lead (its own row, its own generators)
    assert duo.stepper.voices == 2
    number, tune = duo.finished.popleft()
    assert isinstance(tune, BandTune) and len(tune.voices[0].body) == len(tune.body)
    follower = [n for n in notes if n.voice == 2]
    assert follower and {n.beat for n in follower} <= {n.beat for n in notes if n.voice == 1} | {n.beat + 0.5 for n in notes if n.voice == 1}
    abc = tune.to_abc(number)
    assert abc.count("\nV:") == 2 and abc.index("V:1") < abc.index("V:2")


def test_the_chords_come_a_beat_group_behind_the_lead_and_the_drone_is_released_at_the_end(model):
    trio, _ = band(model, "trio", seed=2)
    notes = until_tune_ends(trio)
    assert trio.tune.meter and trio.lookahead_beats == 0  # the tune ended: nothing to look ahead for
    chords = [n for n in notes if n.voice == 3]
    assert chords and max(n.beat for n in chords) <= max(n.beat for n in notes if n.voice == 1) + 1e-6
    trio.next_notes()  # the next tune begins
    assert trio.lookahead_beats == group_quarters(trio.tune.meter)
    pipes, _ = band(model, "pipes", seed=2)
    notes = until_tune_ends(pipes)
    releases = [n for n in notes if isinstance(n, Release)]
    lead_end = max(n.beat + n.duration for n in notes if not isinstance(n, Release) and n.voice == 1)
    assert [r.voice for r in releases] == [2] and abs(releases[0].beat - lead_end) < 1e-6
    strikes = sorted({n.beat for n in notes if not isinstance(n, Release) and n.voice == 2})
    assert strikes[0] == min(n.beat for n in notes if not isinstance(n, Release) and n.voice == 1)


def test_a_held_bar_loops_every_voice_but_the_drone(model):
    trio, params = band(model, "trio", seed=1)
    notes = []
    while sum(n.voice == 1 for n in notes) < 40:
        notes += trio.next_notes()
    params.set("hold", True)
    loop = [trio.next_notes()[0] for _ in range(40)]
    assert {n.voice for n in loop} == {1, 2, 3} and all(n.looped for n in loop)
    assert all(a.beat <= b.beat for a, b in zip(loop, loop[1:]))


def test_a_muted_voice_keeps_its_place_in_the_music(model):
    """Mute silences a voice at the outputs (the engine); the composer writes it on, so unmuting
    brings it back in time."""
    duo, params = band(model, "duo", seed=3)
    params.set("voice.2.mute", True)
    notes = until_tune_ends(duo)
    assert any(n.voice == 2 for n in notes)
