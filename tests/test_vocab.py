import json

from instrument.model import vocab
from instrument.model.vocab import TokenClass
from tests.helpers import ROOT


def test_vocabulary_is_the_original_order():
    shipped = json.loads((ROOT / "instrument" / "model" / "vocab.json").read_text())
    assert list(vocab.TOKENS) == shipped
    assert vocab.SIZE == 137
    # spot checks straight from the seed's dimension listing
    assert vocab.INDEX["d'"] == 0 and vocab.INDEX["M:4/4"] == 104 and vocab.INDEX["^g"] == 136
    assert vocab.INDEX["<s>"] == 80 and vocab.INDEX["</s>"] == 59 and vocab.INDEX["|"] == 53


def test_token_classes_cover_the_vocabulary():
    counts = {cls: len(vocab.tokens_of(cls)) for cls in TokenClass}
    assert counts[TokenClass.PITCH] == 84
    assert counts[TokenClass.REST] == 1
    assert counts[TokenClass.DURATION] == 18
    assert counts[TokenClass.BROKEN] == 7
    assert counts[TokenClass.TUPLET] == 7
    assert counts[TokenClass.BAR] == 5
    assert counts[TokenClass.METER] == 7 and counts[TokenClass.MODE] == 4
    assert counts[TokenClass.CHORD_OPEN] == counts[TokenClass.CHORD_CLOSE] == 1
    assert counts[TokenClass.START] == counts[TokenClass.END] == 1
    assert sum(counts.values()) == 137


def test_pitch_parsing():
    assert vocab.parse_pitch("C") == (None, "C", 0)
    assert vocab.parse_pitch("^c'") == (1, "C", 2)
    assert vocab.parse_pitch("_B,") == (-1, "B", -1)
    assert vocab.parse_pitch("=e") == (0, "E", 1)
    assert vocab.natural_midi("C", 0) == 60 and vocab.natural_midi("C", 1) == 72
    assert vocab.natural_midi("B", -1) == 59


def test_durations_and_rhythm_tokens():
    from fractions import Fraction as F

    assert vocab.duration_value("3/2") == F(3, 2)
    assert vocab.duration_value("/4") == F(1, 4)
    assert vocab.duration_value("12") == 12
    assert vocab.broken_parts("2>") == (2, ">")
    assert vocab.broken_parts("/2<") == (F(1, 2), "<")
    assert vocab.broken_parts(">") == (None, ">")
    assert vocab.tuplet_size("(9") == 9


def test_pitch_class_tokens_span_twelve_semitones():
    pcs = set()
    for token in vocab.PITCH_CLASS_TOKENS:
        acc, letter, octave = vocab.parse_pitch(token)
        pcs.add((vocab.natural_midi(letter, octave) + (acc or 0)) % 12)
    assert pcs == set(range(12))
