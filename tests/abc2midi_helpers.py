"""abc2midi, an independent reader of our ABC, run on one tune: its notes and its bar warnings.

Shared by the tests that hold our note rules and our tunes to it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import mido

from instrument.music.tunes import BAR_TOKENS, Tune, abc_body, abc_pieces

ABC2MIDI = shutil.which("abc2midi")

LEAD_TICKS = 1  # abc2midi starts every track one tick in (genmidi.c: delta_time = 1)
SLACK_TICKS = 1  # it rounds each note to whole ticks and carries the error: (7 and (9 land a tick off
BAR_WARNING = re.compile(r"line-char (\d+)-(\d+) : Track \d+ Bar \d+ has \S+ (?:time )?units")


def abc_text(meter: str, mode: str, body: list[str]) -> str:
    """The tune as ABC, as ``Tune.to_abc`` writes it, plus ``%%MIDI chordattack 0``.

    ``to_abc`` carries ``%%propagate-accidentals octave`` (an accidental holds only in its own octave,
    the spec) inside the tune: abc2midi resets it at every X:, so a line above X: would be lost.
    Without ``chordattack 0`` abc2midi starts each further note of a chord 10 ticks late.
    """
    abc = Tune(meter, mode, body).to_abc()
    assert "\n%%propagate-accidentals octave\n" in abc
    return abc.replace("K:", "%%MIDI chordattack 0\nK:", 1)


def token_offsets(meter: str, mode: str, body: list[str]) -> list[int]:
    """Where each token starts in ``abc_body``, the line abc2midi reports positions in."""
    pieces = abc_pieces(meter, mode, body)
    lead = len("".join(pieces)) - len("".join(pieces).lstrip())
    offsets, at = [], 0
    for token, piece in zip(body, pieces):
        offsets.append(at + (1 if token in BAR_TOKENS else 0) - lead)
        at += len(piece)
    assert "".join(pieces).strip() == abc_body(meter, mode, body)  # same layout as Tune.to_abc
    return offsets


@dataclass
class Abc2midi:
    notes: list[tuple[int, int]]  # (onset tick, pitch), sorted
    warned: set[int]  # body indices of the bar tokens abc2midi warned at
    messages: str


def abc2midi(meter: str, mode: str, body: list[str], tmp: Path, origin: list[int | None] | None = None) -> Abc2midi:
    """Run abc2midi on one tune; ``origin`` maps each token of ``body`` to the index it stands for."""
    tmp.mkdir(parents=True, exist_ok=True)
    text = abc_text(meter, mode, body)
    (tmp / "tune.abc").write_text(text)
    midi = tmp / "tune.mid"
    midi.unlink(missing_ok=True)
    result = subprocess.run([ABC2MIDI, "tune.abc", "-o", "tune.mid"], cwd=tmp, capture_output=True, text=True)
    messages = result.stdout + result.stderr
    notes: list[tuple[int, int]] = []
    if midi.exists():
        song = mido.MidiFile(midi)
        scale = 480 / song.ticks_per_beat
        for track in song.tracks:
            tick = 0
            for message in track:
                tick += message.time
                if message.type == "note_on" and message.velocity:
                    notes.append((round((tick - LEAD_TICKS) * scale), message.note))
    body_line = text.rstrip("\n").count("\n") + 1
    at_token = {o: k for k, o in enumerate(token_offsets(meter, mode, body)) if body[k] in BAR_TOKENS}
    origin = origin if origin is not None else list(range(len(body)))
    warned = set()
    for line, char in BAR_WARNING.findall(messages):
        assert int(line) == body_line and int(char) in at_token, f"warning not at a bar line: {line}-{char}"
        warned.add(origin[at_token[int(char)]])
    return Abc2midi(sorted(notes), warned, messages)
