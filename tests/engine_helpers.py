"""An in-process output that keeps what the engine hands it, and an engine playing to it, for engine tests."""

from __future__ import annotations

from instrument.live.composer import Composer
from instrument.live.engine import Engine, Limits
from instrument.live.params import Parameters
from instrument.timing import Scheduler, clock
from tests.helpers import make_model


class Collector:
    """An Output that records every call with the time it came."""

    name = "collector"

    def __init__(self):
        self.notes = []  # (ScheduledNote, time handed over)
        self.tunes = []
        self.panics = []
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

    def close(self, at):
        self.closed_at = at

    def status(self):
        return f"collector: {len(self.notes)} notes"


def engine_for(limits: Limits, seed: int = 3, params: Parameters | None = None, **settings) -> tuple[Engine, Parameters, Collector]:
    """An engine playing a small random model (48 units) to a Collector at 240 BPM in 4/4 major;
    ``params``: the registry to use (a new one by default), ``settings``: more start values."""
    params = params or Parameters()
    for name, value in {"tempo": 240.0, "meter.next": "4/4", "mode.next": "maj", **settings}.items():
        params.set(name, value, smoothing_ms=0)  # a start state, not a glide
    composer = Composer(make_model(hidden=48, seed=seed), params, seed=seed)
    out = Collector()
    return Engine(composer, params, [out], Scheduler(realtime=False), limits), params, out
