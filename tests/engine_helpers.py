"""An in-process output that keeps what the engine hands it, for engine tests."""

from __future__ import annotations

from instrument.live.scheduler import clock


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
