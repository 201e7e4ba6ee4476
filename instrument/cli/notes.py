"""``run.py notes``: tunes in the tokens format to notes and bar counts, as JSON.

For checking what a tune sounds like without the live loop, and for comparing with other tools
(tests/test_notes_abc2midi.py compares it with abc2midi note for note).
"""

from __future__ import annotations

import argparse
import json
import sys

from instrument.errors import UsageError
from instrument.music.notes import Score, tune_notes
from instrument.music.tunes import parse_tunes

HELP = "turn tunes in the tokens format into notes and bar counts (JSON)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", default="-", help="tunes in the tokens format ('-' or nothing: stdin)")
    parser.add_argument("--no-repeats", action="store_true", help="play the tunes as written, repeats not unfolded")


def read_text(name: str) -> str:
    """The text of a file, or of stdin for '-'; an unreadable file is the user's mistake."""
    if name == "-":
        return sys.stdin.read()
    try:
        with open(name, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise UsageError(f"cannot read {name!r}: {reason}") from None


def score_json(score: Score) -> dict:
    return {
        "notes": [{"pitch": n.pitch, "start": n.start, "duration": n.duration} for n in score.notes],
        "bars": [{"length": b.length, "expected": b.expected, "ok": b.ok, "pickup": b.pickup} for b in score.bars],
    }


def run(args: argparse.Namespace) -> int:
    source = "stdin" if args.file == "-" else args.file
    tunes = parse_tunes(read_text(args.file), source=source)
    json.dump([score_json(tune_notes(t, repeats=not args.no_repeats)) for t in tunes], sys.stdout)
    sys.stdout.write("\n")
    return 0
