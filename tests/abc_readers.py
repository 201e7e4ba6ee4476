"""Three independent readers of our ABC, each run on many tunes at once: abc2midi (Debian's
abcmidi), music21's ABC parser, and abcjs (the page's own, vendored) in headless chromium through
its MIDI writer. Each gives every tune's notes as (onset, pitch, length) in MIDI ticks at 480 a
quarter note, to hold our notes to.

Shared by the tests that check the ABC the instrument writes says what it played.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import mido

from tests.abc2midi_helpers import ABC2MIDI, LEAD_TICKS
from tests.helpers import ROOT

TICKS = 480  # a quarter note
Notes = list[tuple[int, int, int]]  # (onset, pitch, length) in ticks
ABCJS = ROOT / "instrument" / "web" / "static" / "vendor" / "abcjs-basic-min.js"


def midi_notes(song: mido.MidiFile, lead: int = 0) -> Notes:
    """Every note of a MIDI file (all tracks), onsets less ``lead`` ticks, scaled to 480 a quarter."""
    scale = TICKS / song.ticks_per_beat
    out: Notes = []
    for track in song.tracks:
        tick, sounding = 0, {}
        for message in track:
            tick += message.time
            if message.type == "note_on" and message.velocity:
                sounding.setdefault(message.note, []).append(tick)
            elif message.type in ("note_on", "note_off") and sounding.get(message.note):
                on = sounding[message.note].pop(0)
                out.append((round((on - lead) * scale), message.note, round((tick - on) * scale)))
    return sorted(out)


def ours(notes) -> Notes:
    """Our notes (``Note`` objects: beats) in the same terms."""
    return sorted((round(n.start * TICKS), n.pitch, round(n.duration * TICKS)) for n in notes)


def abc2midi_all(texts: list[str], folder: Path) -> list[Notes | None]:
    """abc2midi on each tune; None where it wrote no MIDI. A file of X:1, X:2, ... at a time, for
    speed; abc2midi gives up the whole file at an error it cannot pass (``/3``: "not a power of
    2"), so from the first tune without MIDI it goes on one tune, then the rest, again.
    ``%%MIDI chordattack 0`` so that a chord's notes start together."""
    folder.mkdir(parents=True, exist_ok=True)
    out: list[Notes | None] = []
    alone = False
    while len(out) < len(texts):
        batch = texts[len(out):len(out) + 1] if alone else texts[len(out):]
        for old in folder.glob("book*.mid"):
            old.unlink()
        book = [_numbered(text, i).replace("K:", "%%MIDI chordattack 0\nK:", 1) for i, text in enumerate(batch, 1)]
        (folder / "book.abc").write_text("\n".join(book))
        subprocess.run([ABC2MIDI, "book.abc"], cwd=folder, capture_output=True, text=True, timeout=300)
        read = []
        for number in range(1, len(batch) + 1):
            path = folder / f"book{number}.mid"
            if not path.exists():
                break
            read.append(midi_notes(mido.MidiFile(path), LEAD_TICKS))
        if len(read) == len(batch) or alone:
            out += read or [None]
            alone = False
        else:  # it stopped at or after the first tune it wrote nothing for: that one alone, then on
            out += read
            alone = True
    return out


def _numbered(text: str, number: int) -> str:
    """A tune's ABC as tune ``number`` of a book (its own ``X:`` line replaced)."""
    lines = text.split("\n")
    return "\n".join([f"X:{number}", *(lines[1:] if lines[0].startswith("X:") else lines)])


def music21_all(texts: list[str]) -> list[Notes | None]:
    """music21's reading of each tune; None where it cannot read it."""
    from music21 import converter

    out: list[Notes | None] = []
    for text in texts:
        try:
            score = converter.parse(text, format="abc")
        except Exception:  # music21 raises many kinds for what it cannot read
            out.append(None)
            continue
        score = score.stripTies()  # a note music21 split at a bar line it overfills is one note
        notes = [(round(float(n.offset) * TICKS), p.midi, round(float(n.quarterLength) * TICKS))
                 for n in score.flatten().notes for p in n.pitches]
        out.append(sorted(notes))
    return out


class Abcjs:
    """abcjs in a headless chromium: its MIDI writer reads the ABC as its sheet and playback do."""

    def __init__(self):
        from bench.harness.browser import open_browser

        self.driver = open_browser()
        self.driver.get("about:blank")
        self.driver.execute_script(ABCJS.read_text() + "\nwindow.ABCJS = ABCJS;")

    def read_all(self, texts: list[str]) -> list[Notes | None]:
        """Each tune's notes as abcjs reads them; None where it throws (a sheet it cannot draw)."""
        found = self.driver.execute_script("""
            return arguments[0].map(abc => {
              try {
                const midi = ABCJS.synth.getMidiFile(abc, {midiOutputType: "binary"});
                return Array.from(midi[0]);
              } catch (error) { return String(error); }
            });""", texts)
        out: list[Notes | None] = []
        for item in found:
            out.append(midi_notes(mido.MidiFile(file=io.BytesIO(bytes(item)))) if isinstance(item, list) else None)
        return out

    def draws(self, texts: list[str]) -> list[str | None]:
        """Each tune drawn as the page draws it: None, or the error abcjs threw (a blank sheet)."""
        return self.driver.execute_script("""
            const div = document.createElement("div"); document.body.appendChild(div);
            return arguments[0].map(abc => {
              try { ABCJS.renderAbc(div, abc, {add_classes: true}); return null; }
              catch (error) { return String(error); }
            });""", texts)

    def close(self) -> None:
        self.driver.quit()
