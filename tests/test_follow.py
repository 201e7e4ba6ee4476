"""A follower: the lead's rhythm and bars, its own pitches pushed toward the lead's by its
cohesion, divided by its own temperature; a split eighth made a passing note."""

from __future__ import annotations

import math

import numpy as np
import pytest

from instrument.live.follow import Follower, cohesion_bias
from instrument.model import vocab
from instrument.model.stepper import Stepper
from instrument.model.controls import Controls
from instrument.music.notes import NoteStream
from tests.helpers import make_model


def allowed(bias: np.ndarray) -> set[str]:
    return {vocab.TOKENS[i] for i in np.flatnonzero(np.isfinite(bias))}


def test_rhythm_bar_lines_and_rests_are_the_lead_s_alone():
    f = Follower("6/8", "maj")
    for token in ("|:", "c", "3", "z", "|", "[", "c", "]", "(3", ">"):  # ("c 2" may be split: see below)
        f.lead(token)
        if vocab.TOKEN_CLASS[vocab.INDEX[token]] is not vocab.TokenClass.PITCH:
            assert allowed(f.bias(0.3, 1.0)) == {token}, token
        f.took(token, None)


def test_at_cohesion_1_only_the_lead_s_own_token_and_below_it_the_scale_and_the_lead_s_notes():
    f = Follower("4/4", "dor")
    f.lead("c")
    assert allowed(f.bias(1.0, 1.0)) == {"c"}  # unison, spelled as the lead spells it
    bias = f.bias(0.6, 1.0)
    sounding = {vocab.TOKENS[i] for i in np.flatnonzero(bias == np.nanmax(bias))}
    assert {"c", "=c", "^B"} & sounding and "c" in sounding  # every spelling of the lead's pitch is pushed up
    assert math.isinf(bias[vocab.INDEX["^c"]]) and bias[vocab.INDEX["^c"]] < 0  # C# is in no dorian C tune
    assert bias[vocab.INDEX["d"]] == pytest.approx(-1.0)  # a scale note the lead has not played yet
    assert bias[vocab.INDEX["c'"]] < bias[vocab.INDEX["d"]]  # an octave away: a second player stays near


def test_the_bias_is_divided_by_the_follower_s_temperature():
    f = Follower("4/4", "maj")
    f.lead("c")
    cool, hot = f.bias(0.6, 0.5), f.bias(0.6, 2.0)
    assert cool[vocab.INDEX["c"]] == pytest.approx(4 * hot[vocab.INDEX["c"]]) == pytest.approx(2 * cohesion_bias(0.6))


def test_cohesion_bias_grows_to_unison():
    assert cohesion_bias(0.0) == 0.0
    assert cohesion_bias(0.6) == pytest.approx(4.5 * 0.6 + 0.6 / 8)
    assert cohesion_bias(0.99) > 9 and cohesion_bias(1.0) == math.inf


def test_a_split_second_eighth_becomes_a_passing_note_toward_the_lead_s_next():
    f = Follower("4/4", "maj")
    f.lead("c")
    f.took("c", "2")
    f.lead("2")  # "c 2" on the downbeat: the follower may play it as two eighths
    options = allowed(f.bias(0.0, 1.0))
    assert "2" in options and {"d", "B"} <= options and "g" not in options
    assert f.took("B", "e") == "d"  # toward E, the scale step between C and E
    assert f.splits == 1


def test_a_split_is_undone_when_the_lead_lengthens_its_note_after_all():
    f = Follower("4/4", "maj")
    f.lead("c")
    f.took("c", "2")
    f.lead("2")
    assert f.took("d", ">") == "2"  # "c 2 >": the lead's note is dotted, played whole


def test_its_notes_are_the_lead_s_with_its_pitches_and_a_split_as_two_eighths():
    lead = NoteStream("4/4", "maj")
    f = Follower("4/4", "maj")
    out, follower = [], []
    body = ["c", "2", "e", "g", "|"]
    versions = {0: "e", 1: "d", 2: "e", 3: "g", 4: "|"}
    for i, token in enumerate(body):
        f.lead(token)
        f.took(versions[i], body[i + 1] if i + 1 < len(body) else None)
        notes = lead.push(token)
        out += notes
        follower += f.notes(notes)
    notes = lead.close()
    follower += f.notes(notes)
    assert [(n.pitch, n.start, n.duration) for n in follower] == [(76, 0.0, 0.5), (74, 0.5, 0.5), (76, 1.0, 0.5), (79, 1.5, 0.5)]
    assert f.body == ["e", "d", "e", "g", "|"] and f.splits == 1


def test_a_tune_cut_off_leaves_the_follower_playing_the_lead_s_last_notes():
    f = Follower("4/4", "maj")
    f.lead("c")
    f.took("e", "d")
    f.lead("d")  # the tune ends before the follower's version of it is sampled
    f.close(["c", "d"])
    assert f.body == ["e", "d"]


def test_a_follower_row_beside_the_lead_plays_the_lead_s_rhythm_with_its_own_pitches():
    """One batched step per token (a small random model): the follower's notes coincide with the
    lead's at every onset, in unison at cohesion 1 and not at 0."""
    model = make_model(seed=3)
    same = {}
    for cohesion in (0.0, 1.0):
        s = Stepper(model, voices=2, seed=4)
        s.force(["<s>", "M:4/4", "K:Cmaj"])
        f, stream = Follower("4/4", "maj"), NoteStream("4/4", "maj")
        lead_notes, follower_notes = [], []
        token = vocab.TOKENS[int(s.step(Controls(), voices=[0])[0])]
        for _ in range(200):
            if token == vocab.END:
                break
            f.lead(token)
            notes = stream.push(token)
            lead_notes += notes
            follower_notes += f.notes(notes)
            tokens = s.step([Controls(), Controls(logit_bias=f.bias(cohesion, 1.0))])
            following = vocab.TOKENS[int(tokens[0])]
            fed = f.took(vocab.TOKENS[int(tokens[1])], None if following == vocab.END else following)
            if fed != vocab.TOKENS[int(tokens[1])]:
                s.replace(1, fed)
            token = following
        notes = stream.close()
        follower_notes += f.notes(notes)
        lead_at = {}
        for n in lead_notes + notes:
            lead_at.setdefault(round(n.start, 6), set()).add(n.pitch)
        assert follower_notes and all(round(n.start, 6) in lead_at for n in follower_notes if n.token not in f._split)
        same[cohesion] = np.mean([n.pitch in lead_at[round(n.start, 6)] for n in follower_notes])
    assert same[1.0] == 1.0 and same[0.0] < 0.9


def test_replace_feeds_the_new_token_as_if_it_had_been_sampled():
    model = make_model(seed=2)
    a, b = Stepper(model, voices=1, seed=1), Stepper(model, voices=1, seed=1)
    a.force(["<s>", "M:4/4", "K:Cmaj"])
    a.step()  # sampled some token ...
    a.replace(0, "G")  # ... made G before it is fed
    b.force(["<s>", "M:4/4", "K:Cmaj", "G"])
    a.step()
    b.step()
    assert np.allclose(a.readout.logits.numpy(), b.readout.logits.numpy(), atol=1e-5)
    a.step()
    with pytest.raises(RuntimeError):
        Stepper(model, voices=1, seed=1).replace(0, "G")  # nothing sampled yet
