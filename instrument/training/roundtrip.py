"""Check that corpus conversion keeps each tune's notes, against an independent ABC reader.

The independent side is abc2midi reading the ORIGINAL tune text (its own key, unit length,
ties and repeats) with every pitch moved by the conversion's transposition; our side is the
converted tokens read by our token-to-note rules (``instrument.music.notes``). Both give (onset,
pitch) lists in quarter notes with repeats played out; chords compare as sets at an onset.

The original text is touched only where abc2midi would add or drop notes that the
vocabulary has no way to say: grace notes, chord symbols and fermatas are switched off by
abc2midi's own flags; the trill and roll ornaments it plays out (``~ T R !trill! +trill+``)
are removed, and so are staccato dots (abc2midi drops a broken rhythm that touches one);
a header ``P:`` play order is removed (the corpus keeps the body as written),
and so is ``R:`` (abc2midi swings eighths in an ``R:hornpipe``);
accidentals are set to hold in their octave, as our rules and ABC 2.1 read them, and chord
notes to start together (abc2midi staggers them by default).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from instrument.music.abc_reader import AbcTune
from instrument.music.tunes import Tune

ABC2MIDI_FLAGS = ("-NGRA", "-NGUI", "-NFER", "-silent")
# Accidentals hold in their octave (as ABC 2.1 and our rules read them); chord notes start together.
DIRECTIVES = ("%%propagate-accidentals octave", "%%MIDI chordattack 0")
ONSET_TOLERANCE = 0.02  # quarter notes; abc2midi rounds times to 1/480 quarter
CHORD_WINDOW = 0.007  # notes closer than this (quarter notes) sound as one chord

Notes = list[tuple[float, int]]  # (onset in quarter notes, MIDI pitch)

_FIELD_LINE = re.compile(r"[A-Za-z]:")
_ORNAMENT = re.compile(r'("[^"]*")|(\[[A-Za-z]:[^\]]*\])|!trill!|\+trill\+|[~TR]|\.(?!\|)')


def abc2midi_available() -> bool:
    return shutil.which("abc2midi") is not None


def original_for_abc2midi(tune: AbcTune, number: int) -> str:
    """The original tune text as abc2midi should read it for the comparison (see module doc)."""
    lines = [f"X:{number}"]
    in_header = True
    for line in tune.lines[1:]:
        if in_header:
            if line.startswith(("P:", "R:")):  # play order; R:hornpipe makes abc2midi swing
                continue
            lines.append(line)
            if line.startswith("K:"):
                lines += DIRECTIVES
                in_header = False
            continue
        if line.startswith("%") or _FIELD_LINE.match(line):
            lines.append(line)
        else:
            lines.append(_ORNAMENT.sub(lambda m: m[1] or m[2] or "", line))
    return "\n".join(lines) + "\n"


def ours_for_abc2midi(tune: Tune, number: int) -> str:
    """A converted tune as ABC for abc2midi (a diagnostic second reading of our tokens)."""
    lines = tune.to_abc(number).rstrip("\n").split("\n")
    key_line = next(i for i, line in enumerate(lines) if line.startswith("K:"))
    return "\n".join(lines[: key_line + 1] + list(DIRECTIVES) + lines[key_line + 1:]) + "\n"


def abc2midi_notes(texts: Sequence[str], timeout: float = 20) -> list[Notes | None]:
    """Notes of each ABC tune text as abc2midi reads it; None where it wrote no readable MIDI.

    One abc2midi run per tune: in a file of many tunes abc2midi carries state from one tune
    into the next.
    """
    import mido

    results: list[Notes | None] = []
    with tempfile.TemporaryDirectory(prefix="roundtrip-") as folder:
        source, midi = Path(folder) / "t.abc", Path(folder) / "t.mid"
        for text in texts:
            source.write_text(text)
            midi.unlink(missing_ok=True)
            try:
                subprocess.run(["abc2midi", source.name, "-o", midi.name, *ABC2MIDI_FLAGS], cwd=folder,
                               capture_output=True, timeout=timeout, check=False)
                song = mido.MidiFile(midi)
            except (OSError, EOFError, ValueError, subprocess.TimeoutExpired):
                results.append(None)
                continue
            notes: Notes = []
            for track in song.tracks:
                ticks = 0
                for message in track:
                    ticks += message.time
                    if message.type == "note_on" and message.velocity > 0:
                        notes.append((ticks / song.ticks_per_beat, message.note))
            results.append(notes)
    return results


def our_notes(tune: Tune) -> Notes:
    """The converted tune read by our token-to-note rules, repeats played out."""
    from instrument.music.notes import tune_notes

    return [(float(note.start), int(note.pitch)) for note in tune_notes(tune, repeats=True).notes]


def onset_groups(notes: Notes) -> list[tuple[float, frozenset[int]]]:
    """Notes as (onset, set of pitches) from the first onset on; near-simultaneous notes join."""
    if not notes:
        return []
    ordered = sorted(notes)
    first = ordered[0][0]
    groups: list[tuple[float, set[int]]] = []
    for onset, pitch in ordered:
        if groups and onset - first - groups[-1][0] < CHORD_WINDOW:
            groups[-1][1].add(pitch)
        else:
            groups.append((onset - first, {pitch}))
    return [(onset, frozenset(pitches)) for onset, pitches in groups]


def difference(theirs: Notes, ours: Notes, shift: int = 0) -> str | None:
    """None when both readings agree (``theirs`` moved by ``shift`` semitones); else the first
    disagreement, in words."""
    a = onset_groups([(onset, pitch + shift) for onset, pitch in theirs])
    b = onset_groups(ours)
    for index, (x, y) in enumerate(zip(a, b)):
        if x[1] != y[1] or abs(x[0] - y[0]) > ONSET_TOLERANCE:
            return (f"onset {index}: abc2midi {x[0]:.3f} {sorted(x[1])}, "
                    f"ours {y[0]:.3f} {sorted(y[1])}")
    if len(a) != len(b):
        return f"abc2midi has {len(a)} onsets, ours {len(b)}"
    return None


@dataclass
class Outcome:
    """One tune's check: where it came from and the first disagreement (None when they agree)."""

    source: str
    problem: str | None


def check(pairs: Sequence[tuple[AbcTune, Tune, int]], reader: Callable[[Sequence[Tune]], list[Notes | None]] | None = None
          ) -> list[Outcome]:
    """Compare every (original ABC, converted tune, shift); ``reader`` reads our tunes
    (default: ``instrument.music.notes``)."""
    theirs = abc2midi_notes([original_for_abc2midi(abc, i) for i, (abc, _, _) in enumerate(pairs, 1)])
    if reader is None:
        ours: list[Notes | None] = []
        for _, tune, _ in pairs:
            try:
                ours.append(our_notes(tune))
            except Exception as error:  # a tune our rules reject is a disagreement, not a crash
                ours.append(None)
                print(f"instrument.music.notes failed: {type(error).__name__}: {error}")
    else:
        ours = reader([tune for _, tune, _ in pairs])
    outcomes = []
    for (abc, _, shift), a, b in zip(pairs, theirs, ours):
        source = f"{abc.source}#{abc.number}"
        if a is None:
            outcomes.append(Outcome(source, "abc2midi wrote no MIDI"))
        elif b is None:
            outcomes.append(Outcome(source, "our rules could not read the tokens"))
        else:
            outcomes.append(Outcome(source, difference(a, b, shift)))
    return outcomes


def abc2midi_reader(tunes: Sequence[Tune]) -> list[Notes | None]:
    """Read our converted tunes with abc2midi too: tells a converter fault from a notes fault."""
    return abc2midi_notes([ours_for_abc2midi(tune, i) for i, tune in enumerate(tunes, 1)])
