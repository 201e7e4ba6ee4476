"""Modes from the music: a tune whose K: names only a key gets its mode from its tonic."""

from __future__ import annotations

import pytest

from instrument.music.abc_reader import Key, read_body, read_header, split_tunes
from instrument.training.convert import convert
from instrument.training.modes import check_hidden, infer


def tune(body: str, key: str = "G", meter: str = "4/4") -> str:
    return f"X:1\nT:t\nM:{meter}\nL:1/8\nK:{key}\n{body}\n"


def read(text: str):
    (abc,) = split_tunes(text, "t.abc")
    header = read_header(abc)
    return header.key, read_body(header)


@pytest.mark.parametrize("body, played", [
    ("|: GABc dBAG | FGAB A4 :|: defg afge | dBAF G4 :|", ("G", 0, "maj")),
    ("|: ABcd edBA | GABd edBA :|: eaag eaag | edBd A4 :|", ("A", 0, "dor")),
    ("|: DEFG A2AB | cBAG FED2 :|: d2cA BcAG | FDEF D4 :|", ("D", 0, "mix")),
    ("|: EFGA B2AG | FGAF E4 :|: e2dB AGFA | GEFD E4 :|", ("E", 0, "min")),
])
def test_a_g_signature_tune_takes_its_mode_from_the_note_it_ends_on(body, played):
    key, events = read(tune(body))
    result = infer(key, events)
    assert (result.key.letter, result.key.alter, result.key.mode) == played
    assert result.key.signature() == key.signature()  # the same notes: only the tonic moved


def test_a_dorian_tune_written_in_g_is_transposed_to_c_dorian():
    c = convert(split_tunes(tune("|: ABcd edBA | GABd edBA :|: eaag eaag | edBd A4 :|"), "t.abc")[0])
    assert c.tune.mode == "dor" and c.rule == "final+part" and c.written.name == "Gmaj"
    # A B c -> c d e: the e is E flat by C dorian's signature, no accidental needed
    assert c.tune.body[:4] == ["|:", "c", "d", "e"]
    assert c.tune.body[-3:] == ["c", "4", ":|"]


def test_as_written_takes_a_plain_key_as_major():
    c = convert(split_tunes(tune("|: ABcd edBA | GABd edBA :|: eaag eaag | edBd A4 :|"), "t.abc")[0], modes="written")
    assert c.tune.mode == "maj" and c.rule == "written"


def test_a_first_part_that_ends_elsewhere_leaves_the_key_as_written():
    key, events = read(tune("|: ABcd edBA | GABd edBB :|: eaag eaag | edBd A4 :|"))
    result = infer(key, events)  # the first part now ends on B, the tune on A
    assert result.rule == "unclear: first part ends elsewhere" and result.key == key


def test_a_tune_ending_on_a_degree_the_vocabulary_lacks_keeps_its_key():
    key, events = read(tune("GABc dBAG | FGAB B4 |"))  # ends on B: B phrygian
    assert infer(key, events).rule == "unclear: ends off the four modes"
    key, events = read(tune("GABc dBAG | FGAB ^A4 |"))  # ends on a note outside the signature
    assert infer(key, events).rule.startswith("unclear")


def test_a_stated_mode_is_kept_and_checks_the_rule_with_its_name_hidden():
    key, events = read(tune("|: ABcd edBA | GABd edBA :|: eaag eaag | edBd A4 :|", key="Ador"))
    assert key.stated and infer(key, events).rule == "stated"
    assert check_hidden(key, events) == "agree"
    key, events = read(tune("|: ABcd edBA | GABd e4 :|: eaag eaag | edBd e4 :|", key="Ador"))
    assert check_hidden(key, events) == "disagree"  # ends on E, both times: the rule hears E minor
    plain, events = read(tune("GABc dBAG | FGAB G4 |"))
    assert not plain.stated and check_hidden(plain, events) == ""


def test_a_second_ending_closes_the_first_part():
    # the first ending ends on B, the second (as played last) on A, like the tune
    key, events = read(tune("|: ABcd edBA |1 GABd e2dB :|2 GABd edBA |: eaag eaag | edBd A4 :|"))
    assert infer(key, events).key.mode == "dor"


def test_the_last_note_of_a_chord_is_its_lowest():
    key, events = read(tune("|: DEFG A2AB | cBAG FGA[DA] :|: d2cA BcAG | FDEF [D4A4] :|"))
    assert infer(key, events).key.mode == "mix"
