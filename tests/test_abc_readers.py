"""The ABC the instrument writes (recordings, ``generate --format abc``, the web page's sheet) is read
as it played by three independent readers: abc2midi, music21 and abcjs (the page's own, in headless
chromium). Every pair of tokens that can meet is checked, in a run of notes and inside a chord:
tokens were once joined as they came, and ``A /4 2<`` became ``A/42<``, a length of /42 to every
reader and a blank sheet in abcjs (TypeError).

Each reader is compared on what it can say: onsets and pitches for all three, lengths too for abcjs
and music21 where music21 keeps them (an overfull bar it cuts at its bar line). Where a reader cannot
read a construct at all, it is named below with the reason, and the test checks it really cannot.
"""

from __future__ import annotations

import re
import shutil

import pytest

from instrument.model import vocab
from instrument.model.vocab import TokenClass
from instrument.music.notes import tune_notes
from instrument.music.tunes import Tune
from tests.abc2midi_helpers import ABC2MIDI
from tests.abc_readers import Abcjs, abc2midi_all, music21_all, ours

pytestmark = pytest.mark.skipif(ABC2MIDI is None or not shutil.which("chromedriver"),
                                reason="abc2midi (abcmidi) and chromium's driver are needed")

# every token of each class that joins other text (bar tokens other than | are written apart by spaces)
TOKENS = (vocab.tokens_of(TokenClass.DURATION) + vocab.tokens_of(TokenClass.BROKEN) + vocab.tokens_of(TokenClass.TUPLET)
          + ["|", "[", "]", "z", "c", "^F,", "_b", "=e'"])
CONTEXTS = (["B", "c"], ["[", "C", "E"])  # the pair after notes, and inside a chord
AFTER = ["d", "e", "f", "g", "|", "a", "b"]
# the bound in every meter: long notes, rests and chords, durations after durations, into a tuplet
BOUNDED = [Tune(meter, "maj", "c z 16 16 16 c [ C E ] 16 > d (3 e f g a 16 16 | [ C 16 E 2 ] 16 z 9 z 8 | c".split())
           for meter in vocab.METERS]
SLACK = 3  # ticks at 480 a quarter: each reader rounds the notes of a 7- or 9-tuplet its own way

# What a reader cannot read, whatever the text (each is checked to be real):
THIRDS = ("abc2midi cannot read a length of /3 (or /6): it plays none of the tune ('3 b is not a power of 2'), "
          "or, after a rest, the wrong length")
UNEQUAL_TUPLET = ("a broken rhythm into a tuplet makes its first note longer than the others, and abcjs times a "
                  "tuplet of unequal notes wrongly (the next note late); the grammar guard never writes it")


def cases() -> list[tuple[Tune, set[str]]]:
    """Every tune to read, and the readers left out for it (by name)."""
    out = []
    for first in TOKENS:
        for second in TOKENS:
            for before in CONTEXTS:
                tune = Tune("4/4", "maj", [*before, first, second, *AFTER])
                skip = set()
                if first in vocab.tokens_of(TokenClass.BROKEN) and second in vocab.tokens_of(TokenClass.TUPLET):
                    skip.add("abcjs")
                out.append((tune, skip))
    return out + [(tune, set()) for tune in BOUNDED]


def agree(mine, theirs, lengths: bool) -> bool:
    return theirs is not None and len(mine) == len(theirs) and all(
        p == q and abs(a - b) <= SLACK and (not lengths or abs(d - e) <= SLACK)
        for (a, p, d), (b, q, e) in zip(mine, theirs))


@pytest.fixture(scope="module")
def readings(tmp_path_factory):
    """Every case read by the three readers, once for the module."""
    tunes = cases()
    texts = [tune.to_abc(i) for i, (tune, _) in enumerate(tunes, 1)]
    for (_, skip), text in zip(tunes, texts):
        if any(int(d) & (int(d) - 1) for d in re.findall(r"/(\d+)", text.splitlines()[-1])):
            skip.add("abc2midi")  # a length such as /3 or /6
    browser = Abcjs()
    try:
        abcjs, drawn = browser.read_all(texts), browser.draws(texts)
    finally:
        browser.close()
    return {"tunes": tunes, "texts": texts, "abcjs": abcjs, "drawn": drawn,
            "abc2midi": abc2midi_all(texts, tmp_path_factory.mktemp("abc2midi")), "music21": music21_all(texts)}


@pytest.mark.parametrize("reader", ["abc2midi", "music21", "abcjs"])
def test_every_pair_of_tokens_reads_as_the_instrument_played_it(readings, reader):
    wrong = []
    for (tune, skip), text, theirs in zip(readings["tunes"], readings["texts"], readings[reader]):
        if reader in skip:
            continue
        mine = ours(tune_notes(tune).notes)
        if not agree(mine, theirs, lengths=reader == "abcjs"):
            wrong.append(f"{' '.join(tune.body)!r} written {text.splitlines()[-1]!r}: ours {mine[:5]} {reader} "
                         f"{(theirs or [])[:5]}")
    assert not wrong, f"{len(wrong)} tunes read otherwise by {reader}, e.g.\n" + "\n".join(wrong[:5])


def test_abcjs_draws_every_tune(readings):
    failed = [(text.splitlines()[-1], error) for text, error in zip(readings["texts"], readings["drawn"]) if error]
    assert not failed, failed[:5]


def test_what_a_reader_cannot_read_is_real(readings):
    """Keeps the exceptions honest: abc2midi cannot read /3, abcjs misreads unequal tuplets."""
    thirds = unequal = 0
    for (tune, skip), theirs_midi, theirs_js in zip(readings["tunes"], readings["abc2midi"], readings["abcjs"]):
        mine = ours(tune_notes(tune).notes)
        if "abc2midi" in skip:
            assert not agree(mine, theirs_midi, False), (THIRDS, tune.body)
            thirds += 1
        if "abcjs" in skip and not agree(mine, theirs_js, lengths=True):
            unequal += 1
    assert thirds and unequal >= 10, (thirds, unequal, UNEQUAL_TUPLET)


def test_joining_tokens_as_they_come_is_misread_and_these_tests_see_it(tmp_path):
    """The check can fail: the old join of ``A /4 2< B`` (``A/42<B``) reads as other notes in every reader."""
    tune = Tune("4/4", "maj", "A /4 2< B c d |".split())
    naive = tune.to_abc().rsplit("\n", 2)[0] + "\nA/42<Bcd |\n"
    mine = ours(tune_notes(tune).notes)
    browser = Abcjs()
    try:
        (js,), (drawn,) = browser.read_all([naive]), browser.draws([naive])
    finally:
        browser.close()
    (midi,), (m21,) = abc2midi_all([naive], tmp_path), music21_all([naive])
    assert not agree(mine, midi, False) and not agree(mine, m21, False) and not agree(mine, js, True)
    assert agree(mine, abc2midi_all([tune.to_abc()], tmp_path / "ours")[0], False)
