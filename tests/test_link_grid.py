"""How a tempo map tied to a shared session places bars: on the session's grid, the tempo the
session's. The session here is a stand-in timeline: no Link instance is made and nothing touches
a network (real Link peers play only inside a loopback-only namespace: tests/test_link.py); what is
tested is the placing."""

from __future__ import annotations

import pytest

from instrument.live.link import LinkTempoMap, Reading, quantum_of
from instrument.timing import clock


class Timeline:
    """A session's beat line: ``beat0`` at ``t0``, ``tempo`` BPM (a peer may move it)."""

    def __init__(self, tempo: float, beat0: float = 0.3):
        self.tempo, self.t0, self.beat0 = tempo, clock(), beat0

    def read(self, quantum: float) -> Reading:
        now = clock()
        return Reading(now, self.beat0 + (now - self.t0) * self.tempo / 60.0, self.tempo, quantum)

    def move(self, tempo: float) -> None:
        now = clock()
        self.beat0, self.t0, self.tempo = self.beat0 + (now - self.t0) * self.tempo / 60.0, now, tempo


def tied(tempo: float = 120.0) -> tuple[LinkTempoMap, Timeline]:
    timeline = Timeline(tempo)
    tempo_map = LinkTempoMap(0.0, 0.5)
    tempo_map.attach(timeline)
    return tempo_map, timeline


def session_beat_at(tempo_map: LinkTempoMap, timeline: Timeline, beat: float) -> float:
    return timeline.read(4).beat_at(tempo_map.time_at(beat))


@pytest.mark.parametrize("meter, quantum", [("2/4", 2), ("3/4", 3), ("4/4", 4), ("6/8", 2), ("9/8", 3),
                                            ("12/8", 4), ("3/2", 3)])
def test_the_quantum_is_the_meters_beats_in_a_bar(meter, quantum):
    assert quantum_of(meter) == quantum


def test_a_tunes_first_bar_goes_to_the_sessions_next_bar_line():
    tempo_map, timeline = tied()
    tempo_map.follow(0.5, 0.0, 0.0, "4/4")
    first = session_beat_at(tempo_map, timeline, 0.0)
    assert first == pytest.approx(round(first / 4) * 4, abs=1e-6) and first >= timeline.read(4).beat
    # the bars written after it fall on the session's bar lines, a bar apart
    tempo_map.follow(0.5, 4.0, 0.0, "4/4")
    assert session_beat_at(tempo_map, timeline, 4.0) == pytest.approx(first + 4, abs=1e-6)


def test_a_bar_written_short_begins_at_the_next_bar_line_not_inside_the_sessions_bar():
    tempo_map, timeline = tied()
    tempo_map.follow(0.5, 0.0, 0.0, "4/4")
    first = session_beat_at(tempo_map, timeline, 0.0)
    tempo_map.follow(0.5, 3.0, 0.0, "4/4")  # the network wrote a bar of three beats
    assert session_beat_at(tempo_map, timeline, 3.0) == pytest.approx(first + 4, abs=1e-6)
    assert session_beat_at(tempo_map, timeline, 3.5) == pytest.approx(first + 4.5, abs=1e-6)


def test_a_compound_meters_beat_is_the_dotted_quarter():
    tempo_map, timeline = tied(100.0)
    tempo_map.follow(0.4, 0.0, 0.0, "6/8")
    first = session_beat_at(tempo_map, timeline, 0.0)
    assert first % 2 == pytest.approx(0.0, abs=1e-6) or first % 2 == pytest.approx(2.0, abs=1e-6)
    assert session_beat_at(tempo_map, timeline, 1.5) == pytest.approx(first + 1, abs=1e-6)  # a dotted quarter
    assert tempo_map.spq == pytest.approx(60.0 / 100.0 / 1.5)


def test_a_peers_tempo_change_moves_the_notes_not_yet_played_and_keeps_the_grid():
    tempo_map, timeline = tied(120.0)
    tempo_map.follow(0.5, 0.0, 0.0, "4/4")
    first = session_beat_at(tempo_map, timeline, 0.0)
    before = tempo_map.time_at(8.0)
    timeline.move(60.0)
    assert tempo_map.time_at(8.0) > before + 1.0  # half the tempo: later
    assert session_beat_at(tempo_map, timeline, 8.0) == pytest.approx(first + 8, abs=1e-6)
    assert tempo_map.spq == pytest.approx(1.0)


def test_without_a_session_it_is_the_free_tempo_map():
    tempo_map = LinkTempoMap(10.0, 0.5)
    tempo_map.follow(0.25, 4.0, 0.0, "4/4")
    assert tempo_map.time_at(4.0) == pytest.approx(12.0) and tempo_map.time_at(8.0) == pytest.approx(13.0)


def test_a_map_that_leaves_the_session_goes_on_from_where_it_was():
    tempo_map, timeline = tied(120.0)
    tempo_map.follow(0.5, 0.0, 0.0, "4/4")
    now = clock()
    beat = tempo_map.beat_at(now)
    tempo_map.attach(None)
    assert tempo_map.beat_at(now) == pytest.approx(beat, abs=1e-3) and tempo_map.spq == pytest.approx(0.5)


def test_the_views_say_the_session_in_one_line():
    from instrument.live.link import describe

    assert describe({"sync": "off"}) is None
    line = describe({"sync": "link", "peers": 2, "tempo": 132.0, "beat": 37.25, "phase": 1.25, "quantum": 4.0,
                     "waiting": True})
    assert line == "Link: 2 peers, 132.0 BPM, beat 37.25, phase 1.25/4 (waiting for a peer's Start)"
