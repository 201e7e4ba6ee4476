"""Ableton Link: tempo, beat phase and start/stop shared with every peer on the network.

The session is reached through aalink (a binding of Ableton's own Link library, with wheels for
CPython on Linux, macOS and Windows; docs/design.md §12 says why that one). aalink delivers its
callbacks on an asyncio loop, which runs here in a thread of its own ("link"); the instrument's
threads only read the session (a read is a few microseconds and takes no lock a slow thread holds).

Link's clock on Linux is CLOCK_MONOTONIC_RAW and ours is CLOCK_MONOTONIC: they differ by an offset
that drifts with the system's clock discipline, so a reading of the session is placed on our clock
by the clock read just before and just after it (``Reading``), never by converting Link's time.

Beats: a Link beat is the meter's beat (the dotted quarter in 6/8), so the session's tempo is the
``tempo`` parameter; the quantum is the meter's beats in a bar (2 in 6/8, 4 in 4/4): bar lines
fall where the session's phase is 0 (``LinkTempoMap``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from dataclasses import dataclass
from typing import Callable

from instrument.errors import UsageError
from instrument.model import vocab
from instrument.music.phrasing import QUARTERS_PER_BEAT, TempoMap
from instrument.timing import clock

log = logging.getLogger(__name__)

LINK_MIN_BPM, LINK_MAX_BPM = 20.0, 999.0  # what Link itself accepts
ON_GRID = 1e-4  # a bar this close to the session's bar line (in beats, ~50 us at 120 BPM) is on it
TEMPO_SAME = 1e-3  # BPM: a session tempo this close to ours is ours coming back


def quantum_of(meter: str) -> float:
    """The meter's beats in a bar: Link's quantum for a tune in ``meter``."""
    return vocab.METER_EIGHTHS[meter] / 2 / QUARTERS_PER_BEAT[meter]


@dataclass(frozen=True, slots=True)
class Reading:
    """The session's beat at ``time`` (on ``clock()``) for ``quantum``, and its tempo (BPM)."""

    time: float
    beat: float
    tempo: float
    quantum: float

    def time_at(self, beat: float) -> float:
        return self.time + (beat - self.beat) * 60.0 / self.tempo

    def beat_at(self, time: float) -> float:
        return self.beat + (time - self.time) * self.tempo / 60.0


class LinkSession:
    """This instrument as one peer of a Link session. Off until ``enable``: nothing is announced
    on a network before a performer asks for Link."""

    def __init__(self, bpm: float, on_tempo: Callable[[float], None] | None = None,
                 on_peers: Callable[[int], None] | None = None,
                 on_playing: Callable[[bool], None] | None = None):
        try:
            import aalink
        except ImportError as error:
            raise UsageError("--sync link needs the aalink package: pip install 'folk-instrument[link]' "
                                  f"(or pip install aalink); {error}") from None
        self.on_tempo, self.on_peers, self.on_playing = on_tempo, on_peers, on_playing
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="link", daemon=True)
        self._thread.start()

        async def make():  # aalink binds its callbacks to the running loop it is made on
            return aalink.Link(_bpm(bpm))

        self._link = asyncio.run_coroutine_threadsafe(make(), self._loop).result(10)
        self._link.quantum = 4.0
        self._link.set_tempo_callback(self._tempo_moved)
        self._link.set_num_peers_callback(self._peers_moved)
        self._link.set_start_stop_callback(self._playing_moved)
        self._quantum_lock = threading.Lock()  # a reading and the quantum it was read with go together
        self.closed = False

    # -- the session ----------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return bool(self._link.enabled)

    def enable(self, on: bool = True) -> None:
        self._link.enabled = on

    @property
    def peers(self) -> int:
        return int(self._link.num_peers)

    @property
    def tempo(self) -> float:
        return float(self._link.tempo)

    @tempo.setter
    def tempo(self, bpm: float) -> None:
        self._link.tempo = _bpm(bpm)

    @property
    def start_stop(self) -> bool:
        return bool(self._link.start_stop_sync_enabled)

    @start_stop.setter
    def start_stop(self, on: bool) -> None:
        self._link.start_stop_sync_enabled = bool(on)

    @property
    def playing(self) -> bool:
        return bool(self._link.playing)

    def read(self, quantum: float) -> Reading:
        """The session now, on our clock: the beat is read between two reads of ``clock()`` and
        placed at their middle (a read takes microseconds)."""
        link = self._link
        with self._quantum_lock:
            if link.quantum != quantum:
                link.quantum = quantum
            tempo = link.tempo
            before = clock()
            beat = link.beat
            after = clock()
        return Reading((before + after) / 2, float(beat), float(tempo), quantum)

    def close(self) -> None:
        """Leave the session and stop the loop. Idempotent."""
        if self.closed:
            return
        self.closed = True
        try:
            self._link.enabled = False
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(2.0)

    # -- the loop's thread: callbacks, kept short --------------------------------------------
    def _tempo_moved(self, bpm: float) -> None:
        if self.on_tempo is not None:
            _call(self.on_tempo, float(bpm))

    def _peers_moved(self, peers: int) -> None:
        log.info("Link: %d peer%s", peers, "" if peers == 1 else "s")
        if self.on_peers is not None:
            _call(self.on_peers, int(peers))

    def _playing_moved(self, playing: bool) -> None:
        if self.on_playing is not None:
            _call(self.on_playing, bool(playing))


def _bpm(bpm: float) -> float:
    return min(LINK_MAX_BPM, max(LINK_MIN_BPM, float(bpm)))


def _call(callback: Callable, *args) -> None:
    try:
        callback(*args)
    except Exception:  # a broken listener must not take the session's loop down
        log.exception("a Link callback failed")


@dataclass(frozen=True, slots=True)
class _Tie:
    """Quarter-note beat ``beat`` of the performance is the session's beat ``session_beat``,
    read with ``quantum``; ``per_beat`` quarter notes make one session beat (the meter's)."""

    beat: float
    session_beat: float
    quantum: float
    per_beat: float


class LinkTempoMap(TempoMap):
    """The performance's tempo map, tied to a Link session while one is attached.

    Without a session it is the free-running ``TempoMap``. With one, times come from the session
    as it is at the moment of asking: a peer's tempo change moves every note not yet handed over,
    and the engine, which asks again whenever it wakes, follows within one beat. Each bar the lead
    begins is placed on the session's grid: a bar that would begin off the grid (the first of a
    tune, a tune after a Stop, a bar the network wrote short or long) begins at the session's
    next bar line instead, as a DAW launches a clip at the next bar.
    """

    def __init__(self, start_time: float, spq: float):
        super().__init__(start_time, spq)
        self.session: LinkSession | None = None
        self._tie: _Tie | None = None  # None: the next bar the lead begins ties the map anew
        self._meter = "4/4"
        self.lead = 0.0  # seconds: a bar must begin at least this far from now (the engine's lookahead)

    def attach(self, session: LinkSession | None) -> None:
        """Follow ``session`` from the lead's next bar on (None: run free). Until then it runs free
        from where it is, at the session's tempo and place."""
        if self.session is not None and self._tie is not None:
            now = clock()
            TempoMap.restart(self, self.beat_at(now), now, self.spq)
        self.session, self._tie = session, None

    # -- reading ----------------------------------------------------------------------------
    def _reading(self) -> tuple[Reading, _Tie] | None:
        tie = self._tie
        if self.session is None or tie is None:
            return None
        return self.session.read(tie.quantum), tie

    @property
    def spq(self) -> float:
        found = self._reading()
        if found is None:
            return super().spq
        reading, tie = found
        return 60.0 / reading.tempo / tie.per_beat

    def time_at(self, beat: float) -> float:
        found = self._reading()
        if found is None:
            return super().time_at(beat)
        reading, tie = found
        return reading.time_at(tie.session_beat + (beat - tie.beat) / tie.per_beat)

    def beat_at(self, time: float) -> float:
        found = self._reading()
        if found is None:
            return super().beat_at(time)
        reading, tie = found
        return tie.beat + (reading.beat_at(time) - tie.session_beat) * tie.per_beat

    @property
    def quantum(self) -> float:
        """The quantum the session is read with: the meter's beats in a bar, of the bar tied last."""
        tie = self._tie
        return tie.quantum if tie is not None else quantum_of(self._meter)

    def session_beat(self, beat: float) -> float | None:
        """The session's beat where the performance's quarter-note ``beat`` falls (None: free)."""
        tie = self._tie
        return None if self.session is None or tie is None else tie.session_beat + (beat - tie.beat) / tie.per_beat

    # -- the lead moves it ------------------------------------------------------------------
    def follow(self, spq: float, beat: float, bar_offset: float, meter: str) -> None:
        if self.session is None:
            return super().follow(spq, beat, bar_offset, meter)
        if bar_offset > 1e-9 and self._tie is not None and meter == self._meter:
            return  # inside a bar already placed
        self._tie_bar(beat - bar_offset, meter)

    def _tie_bar(self, bar: float, meter: str) -> None:
        """Place the bar that begins at quarter-note ``bar`` on the session's grid: where it falls
        now if that is a bar line of the session not yet past, else the next one."""
        session = self.session
        quantum, per_beat = quantum_of(meter), QUARTERS_PER_BEAT[meter]
        now = clock()
        # where the bar falls as tied now, read with the old tie and quantum before the quantum moves
        when = self.time_at(bar) if self._tie is not None else None
        reading = session.read(quantum)
        if when is not None and when >= now:
            bars = reading.beat_at(when) / quantum
            if abs(bars - round(bars)) * quantum < ON_GRID:  # on the grid and still to come: it stays
                self._meter = meter
                self._tie = _Tie(bar, round(bars) * quantum, quantum, per_beat)
                return
        earliest = now + self.lead  # moved: to the first bar line of the session it can still reach
        at = reading.beat_at(max(when or earliest, earliest))
        session_bar = math.ceil(at / quantum - ON_GRID / quantum) * quantum
        self._meter = meter
        self._tie = _Tie(bar, session_bar, quantum, per_beat)

    def start(self, at: float) -> None:
        super().start(at)
        self._tie = None  # the first bar ties the map to the session

    def shift(self, seconds: float) -> None:
        """After a stall: the next bar the lead begins goes to the session's next bar line."""
        if self._tie is not None:
            self.attach(self.session)  # runs free from where it is until the next bar ties it
        super().shift(seconds)

    def restart(self, beat: float, at: float, spq: float | None = None) -> None:
        """After the session's Start: the next bar the lead begins ties the map anew."""
        super().restart(beat, at, spq)
        self._tie = None


class LinkSync:
    """The ``sync`` parameter's Link side: joins the session when ``sync`` is ``link`` (at start
    or live) and leaves it otherwise; carries the tempo both ways (a peer's through the ``tempo``
    parameter, with the source "Link", so /state and the views show it; ours to the session);
    with ``link.start_stop``, a peer's Stop silences the music at once and its Start begins a new
    tune at the session's next bar.

    The session is made on first use, so nothing announces itself on a network unless a
    performer asked for Link."""

    def __init__(self, params, tempo_map: LinkTempoMap, engine):
        self.params, self.tempo_map, self.engine = params, tempo_map, engine
        self.session: LinkSession | None = None
        self.stops = 0  # a peer's Stops followed
        tempo_map.lead = engine.lookahead + 0.005  # a bar placed on the grid is handed over in time
        params.listen(self._on_change, "sync", "tempo", "link.start_stop")
        self._follow(params.get("sync"))

    def _follow(self, sync: str) -> None:
        if sync == "link":
            if self.session is None:
                self.session = LinkSession(self.params.get("tempo"), on_tempo=self._peer_tempo,
                                           on_playing=self._peer_playing)
            self.session.start_stop = bool(self.params.get("link.start_stop"))
            self.session.enable(True)
            self.tempo_map.attach(self.session)
            self._transport()
        elif self.session is not None and self.session.enabled:
            self.tempo_map.attach(None)
            self.session.enable(False)
            self.engine.rolling.set()
        self.engine.retime()

    def _on_change(self, change) -> None:
        if change.name == "sync":
            self._follow(change.value)
        elif self.session is None or not self.session.enabled:
            return
        elif change.name == "tempo" and change.source != "Link":
            self.session.tempo = float(change.value)
        elif change.name == "link.start_stop":
            self.session.start_stop = bool(change.value)
            self._transport()

    def _transport(self) -> None:
        """Whether the music runs: always, unless start/stop is followed and the session stopped."""
        session = self.session
        if session.start_stop and not session.playing:
            self._stop()
        else:
            self._start()

    def _peer_tempo(self, bpm: float) -> None:
        """A peer moved the session's tempo (the session's loop thread)."""
        if abs(bpm - float(self.params.target("tempo"))) > TEMPO_SAME:
            self.params.set("tempo", bpm, source="Link", smoothing_ms=0)
        self.engine.retime()

    def _peer_playing(self, playing: bool) -> None:
        if self.session is not None and self.session.start_stop:
            self._start() if playing else self._stop()

    def _stop(self) -> None:
        engine = self.engine
        if not engine.rolling.is_set():
            return
        engine.halt()  # nothing more is placed; what was composed of this tune is dropped at the Start
        if engine.start_time:  # playing: silence now, and the Start begins a new tune
            self.stops += 1
            self.params.fire("tune.new", source="Link")
            engine.panic()

    def _start(self) -> None:
        if not self.engine.rolling.is_set():
            self.engine.resume()  # its first bar goes to the session's next bar line

    def status(self) -> dict:
        """What /state, the view and the page show of the session."""
        sync = self.params.get("sync")
        session = self.session
        if sync != "link" or session is None:
            return {"sync": sync}
        reading = session.read(self.tempo_map.quantum)
        return {"sync": "link", "peers": session.peers, "tempo": round(reading.tempo, 2),
                "beat": round(reading.beat, 3), "phase": round(reading.beat % reading.quantum, 3),
                "quantum": reading.quantum, "playing": session.playing if session.start_stop else True,
                "start_stop": session.start_stop, "waiting": not self.engine.rolling.is_set()}

    def line(self) -> str | None:
        """The session in one line for the views (None unless Link is followed)."""
        return describe(self.status())

    def close(self) -> None:
        """Leave the session (after the music has stopped). Idempotent."""
        self.params.unlisten(self._on_change)
        if self.session is not None:
            self.tempo_map.attach(None)
            self.session.close()


def describe(status: dict) -> str | None:
    """``LinkSync.status()`` in words: peers, tempo, beat and phase, and whether it waits."""
    if status.get("sync") != "link" or "peers" not in status:
        return None
    peers = status["peers"]
    line = (f"Link: {peers} peer{'' if peers == 1 else 's'}, {status['tempo']:.1f} BPM, beat {status['beat']:.2f}, "
            f"phase {status['phase']:.2f}/{status['quantum']:g}")
    if status.get("waiting"):
        line += " (waiting for a peer's Start)"
    return line
