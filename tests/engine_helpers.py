"""An in-process output that keeps what the engine hands it, an engine playing to it, and the check that
it handed each note over just in time, for engine tests."""

from __future__ import annotations

from instrument.live.composer import Composer
from instrument.live.engine import Engine, Limits
from instrument.live.params import Parameters
from instrument.model.network import FolkRNN
from instrument.timing import Scheduler, clock
from tests.helpers import make_model
from tests.timing import Jitter


class Collector:
    """An Output that records every call with the time it came."""

    name = "collector"

    def __init__(self):
        self.notes = []  # (ScheduledNote, time handed over)
        self.tunes = []
        self.panics = []
        self.releases = []  # (voice, at, time handed over)
        self.closed_at = None
        self.started_at = None

    def start(self, at):
        self.started_at = at

    def schedule(self, note):
        self.notes.append((note, clock()))

    def tune(self, number, tune):
        self.tunes.append((number, tune))

    def panic(self, at):
        self.panics.append(at)

    def release(self, voice, at, pitch=None):
        self.releases.append((voice, at, clock()) if pitch is None else (voice, at, clock(), pitch))

    def close(self, at):
        self.closed_at = at

    def status(self):
        return f"collector: {len(self.notes)} notes"


def engine_for(limits: Limits, seed: int = 3, params: Parameters | None = None, model: FolkRNN | None = None,
               **settings) -> tuple[Engine, Parameters, Collector]:
    """An engine playing a small random model (48 units, or ``model``) to a Collector at 240 BPM in
    4/4 major; ``params``: the registry to use (a new one by default), ``settings``: more start values."""
    params = params or Parameters()
    for name, value in {"tempo": 240.0, "meter.next": "4/4", "mode.next": "maj", **settings}.items():
        params.set(name, value, smoothing_ms=0)  # a start state, not a glide
    composer = Composer(model or make_model(hidden=48, seed=seed), params, seed=seed)
    out = Collector()
    return Engine(composer, params, [out], Scheduler(realtime=False), limits), params, out


def hand_over_problem(notes: list, jitter: Jitter, lookahead: float, ahead_s: float, late_s: float = 0.001) -> str | None:
    """Why ``notes`` ((ScheduledNote, when it was handed over), as a Collector keeps them) were not
    handed over just in time, or None: each at most ``lookahead + ahead_s`` before its onset and at
    most ``late_s`` after it, each beyond that only by the machine's worst stall near it (from a
    lookahead before the earlier of the two to the later: tests/timing.py)."""
    bad = []
    for i, (note, handed) in enumerate(notes):
        ahead = note.on - handed
        stall = jitter.near(min(note.on, handed) - lookahead - ahead_s, max(note.on, handed))
        if not -late_s - stall <= ahead <= lookahead + ahead_s + stall:
            bad.append(f"note {i + 1} handed {ahead * 1e3:.1f} ms before its onset (the machine's {stall * 1e3:.1f} ms near it)")
    return f"{len(bad)} of {len(notes)} notes not just in time: {bad[:5]}; {jitter}" if bad else None
