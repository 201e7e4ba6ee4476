"""A finished take as the web page shows it (``run.py view take.mid``): its tunes as sheet music,
its notes on the piano roll, the notes sounding at the time slider lit in the notation.

A recording is ``take.mid`` (the notes as they sounded, a marker where each tune begins) and
``take.abc`` beside it (the tunes as they were written). An ensemble's take has a track and a
``V:`` per voice: the lead's part is aligned as a solo's is; the other voices are drawn in the
score beside it and sound on the piano roll. The notation and the notes are tied
together again here: each tune's written notes (our token-to-note rules over its tokens) are
aligned with the tune's notes in the MIDI file by their melodic intervals, which a transposition
does not change and a held loop or a cut only interrupts. Either file alone is shown too: the
MIDI file without notation, the ABC at the default tempo.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from instrument.model import vocab
from instrument.errors import UsageError
from instrument.live.params import INSTRUMENT_PARAMS
from instrument.music.abc_reader import split_tunes
from instrument.music.notes import tune_notes
from instrument.music.phrasing import seconds_per_quarter
from instrument.music.tunes import Tune, abc_body_tokens, abc_pieces
from instrument.outputs.recording import tune_title

_TUNE_MARKER = re.compile(re.escape(tune_title(0))[:-1] + r"(\d+)$")  # the recording's "folk-instrument tune N"
DEFAULT_TEMPO = next(spec.default for spec in INSTRUMENT_PARAMS if spec.name == "tempo")


def take_files(path: str | Path) -> tuple[Path | None, Path | None]:
    """(the .mid, the .abc) of the take that ``path`` names (either file); UsageError if neither is there."""
    path = Path(path)
    if path.suffix.lower() not in (".mid", ".abc"):
        raise UsageError(f"{path}: give a take's .mid file or the .abc beside it")
    midi, abc = path.with_suffix(".mid"), path.with_suffix(".abc")
    midi, abc = (midi if midi.is_file() else None), (abc if abc.is_file() else None)
    if midi is None and abc is None:
        raise UsageError(f"{path}: no such take (neither {path.with_suffix('.mid')} nor {path.with_suffix('.abc')} exists)")
    return midi, abc


def split_voices(lines: list[str]) -> list[tuple[int, str, str]]:
    """A tune's body lines as (voice, its ``V:`` and ``%%`` lines, its music): one voice, 1, if
    the tune has no ``V:`` lines."""
    voices: list[tuple[int, list[str], list[str]]] = []
    for line in lines:
        if line.startswith("V:"):
            number = line[2:].split()[0] if line[2:].split() else ""
            voices.append((int(number) if number.isdigit() else len(voices) + 1, [line], []))
        elif not voices:
            voices.append((1, [], []))
            voices[-1][2].append(line)
        elif line.startswith("%%") and not voices[-1][2]:
            voices[-1][1].append(line)
        else:
            voices[-1][2].append(line)
    return [(n, "".join(h + "\n" for h in head), " ".join(body)) for n, head, body in voices]


def read_abc(path: Path) -> list[dict[str, Any]]:
    """Each tune of a take's ABC: number, meter, mode, header text and the lead's body tokens
    (an ensemble's other voices as their ``V:`` header and text)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{path}: cannot read it ({error})") from None
    tunes = []
    for tune in split_tunes(text, str(path)):
        key = next((i for i, line in enumerate(tune.lines) if line.startswith("K:")), None)
        meter = next((line[2:].strip() for line in tune.lines if line.startswith("M:")), "")
        if key is None or not meter or not tune.number.isdigit():
            raise UsageError(f"{path}: tune X:{tune.number} is not one folk-instrument wrote (no M:, K: or number)")
        mode = tune.lines[key][2:].strip().removeprefix("C")
        if meter not in vocab.METERS or mode not in vocab.MODES:
            raise UsageError(f"{path}: tune X:{tune.number} is not one folk-instrument wrote (its meter or mode is no "
                             f"token: M:{', M:'.join(vocab.METERS)}; K:C{', K:C'.join(vocab.MODES)})")
        voices = split_voices(tune.lines[key + 1:])
        try:
            tokens = abc_body_tokens(voices[0][2] if voices else "")
        except UsageError as error:
            raise UsageError(f"{path}: tune X:{tune.number}: {error}") from None
        tunes.append({"number": int(tune.number), "meter": meter, "mode": mode,
                      "header": "\n".join(tune.lines[: key + 1]) + "\n", "tokens": tokens,
                      "voices": [{"voice": n, "header": head, "start": 0, "pieces": [text]} for n, head, text in voices[1:]],
                      "lead_header": voices[0][1] if len(voices) > 1 else ""})
    return tunes


def read_midi(path: Path) -> tuple[list[dict[str, Any]], float]:
    """The notes of a take's MIDI file (seconds from its start, the tune each belongs to by the
    markers) and its length in seconds."""
    import mido

    try:
        song = mido.MidiFile(path)
    except (OSError, EOFError, ValueError, KeyError, IndexError) as error:
        raise UsageError(f"{path}: not a MIDI file we can read ({error})") from None
    notes: list[dict[str, Any]] = []
    sounding: dict[tuple[int, int], dict[str, Any]] = {}
    voice_of: dict[int, int] = {}  # channel -> voice: an ensemble's take has a track per voice, in order
    if song.type == 1:
        for number, track in enumerate(song.tracks[1:], 1):
            channel = next((m.channel for m in track if hasattr(m, "channel")), None)
            if channel is not None:
                voice_of.setdefault(channel, number)
    tune, t = 0, 0.0
    for message in song:  # merged tracks, times in seconds (tempo changes applied)
        t += message.time
        if message.type == "marker":
            match = _TUNE_MARKER.match(message.text)
            if match:
                tune = int(match.group(1))
        elif message.type == "note_on" and message.velocity > 0:
            note = {"p": message.note, "on": round(t, 4), "off": round(t, 4), "v": message.velocity, "tune": tune, "tok": -1}
            if voice_of.get(message.channel, 1) != 1:
                note["vo"] = voice_of[message.channel]
            sounding[(message.channel, message.note)] = note
            notes.append(note)
        elif message.type in ("note_off", "note_on"):
            note = sounding.pop((message.channel, message.note), None)
            if note is not None:
                note["off"] = round(t, 4)
    for note in sounding.values():
        note["off"] = round(t, 4)
    for i, note in enumerate(notes):
        note["s"] = i
    return notes, t


def align(written: list[tuple[int, int]], played: list[dict[str, Any]]) -> None:
    """Give each played note the token of the written note it sounds ((pitch, token) pairs in
    playing order), matched by melodic intervals (see the module docstring)."""
    a = [q[0] - p[0] for p, q in zip(written, written[1:])]
    b = [q["p"] - p["p"] for p, q in zip(played, played[1:])]
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for i, j, size in matcher.get_matching_blocks():
        for k in range(size + 1 if size else 0):
            played[j + k]["tok"] = written[i + k][1]


class TakeSource:
    """A take for the web page's ``Source`` protocol: everything in ``snapshot``, nothing changes."""

    def __init__(self, path: str | Path):
        midi, abc = take_files(path)
        self.name = str(path)
        tunes = read_abc(abc) if abc is not None else []
        if midi is not None:
            notes, duration = read_midi(midi)
        else:
            notes, duration = self._notes_at_default_tempo(tunes)
        for tune in tunes:  # the lead's notes (voice 1) aligned with its written part
            played = sorted((n for n in notes if n["tune"] == tune["number"] and "vo" not in n), key=lambda n: (n["on"], n["p"]))
            score = tune_notes(Tune(tune["meter"], tune["mode"], tune["tokens"]))
            written = [(n.pitch, n.token) for n in sorted(score.notes, key=lambda n: (n.start, n.pitch))]
            align(written, played)
        self.tunes, self.notes, self.duration = tunes, notes, duration

    @staticmethod
    def _notes_at_default_tempo(tunes: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], float]:
        notes, t = [], 0.0
        for tune in tunes:
            spq = seconds_per_quarter(DEFAULT_TEMPO, tune["meter"])
            score = tune_notes(Tune(tune["meter"], tune["mode"], tune["tokens"]))
            end = t
            for n in score.notes:
                on = t + n.start * spq
                notes.append({"s": len(notes), "p": n.pitch, "on": round(on, 4), "off": round(on + n.duration * spq, 4),
                              "v": 90, "tune": tune["number"], "tok": n.token})
                end = max(end, on + n.duration * spq)
            t = end + spq  # a beat between tunes, as the instrument leaves
        return notes, t

    def hello(self) -> dict[str, Any]:
        return {"mode": "take", "model": self.name, "layers": 0, "hidden": 0, "params": [], "max_rate": 30}

    def snapshot(self) -> dict[str, Any]:
        tunes = [{"number": t["number"], "meter": t["meter"], "mode": t["mode"], "header": t["header"], "start": 0,
                  "pieces": abc_pieces(t["meter"], t["mode"], t["tokens"]), "ended": True, "voices": t["voices"]}
                 for t in self.tunes]
        return {"t": 0.0, "tunes": tunes, "notes": self.notes, "duration": round(self.duration, 3), "file": self.name,
                "head": {}, "status": [f"{self.name}: {len(self.tunes)} tunes, {len(self.notes)} notes"]}

    def poll(self) -> None:
        return None
