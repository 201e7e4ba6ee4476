"""The real-time loop: the model composes just in time, the timing thread plays on time.

Two threads share the work and never wait for each other's slow work:
- the model thread sleeps until the next note is nearly due (``lookahead`` before its onset),
  steps the network only until that note's pitch and length are certain, places it in time
  and hands it to every output (the MIDI port passes it on to the timing thread; the synth
  and recordings take it ahead of time);
- the timing thread (``Scheduler``, real-time priority where allowed) sends MIDI at the
  scheduled instants.
A parameter change is therefore heard at the very next token sampled, which is at most one
note away (one beat group while an ensemble's chords hear each group whole: the composer's
``lookahead_beats``, shown in /state and the view). A rest holds the model thread back as a note
does: it waits out what is known of a rest before the network says whether it goes on, so it
never composes more than one note or rest ahead of what sounds (that beat group aside), whatever
the controls make it write (docs/design.md §5). Stopping for any reason (limit reached, Ctrl-C,
SIGTERM, an error) ends every sounding note and closes every recording; ``--seconds`` ends the
performance by the clock, within one note, rests or not.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections import deque
from dataclasses import dataclass, replace
from typing import Callable

from instrument.errors import excerpt
from instrument.live.composer import Composer, ComposedNote, Release
from instrument.music.phrasing import Phrasing, ScheduledNote
from instrument.outputs import Output, lead_of
from instrument.live.params import Parameters
from instrument.timing import Scheduler, clock

log = logging.getLogger(__name__)

LATE_RESYNC_S = 0.25  # if the model falls this far behind (a stall), move the timeline on
MAX_FAILURES_IN_A_ROW = 20  # composing failed this often in a row even with plain controls: give up
FAILURE_PAUSE_S = 0.02  # after a failed note, so a persistent fault cannot spin the model thread
CHORE_POLL_S = 0.02  # how soon a parked model thread takes work handed to it (call_soon)


@dataclass
class Limits:
    """When a performance ends by itself (0 = no limit); shared by live play and render."""

    bars: int = 0
    tunes: int = 0
    seconds: float = 0.0

    def beyond(self, note: ComposedNote, phrasing: Phrasing, start_time: float) -> bool:
        """Whether ``note`` lies past the end: it starts after ``seconds``, belongs to a tune
        past ``tunes``, or would begin bar ``bars + 1`` (bars are the lead's: the other voices
        end with it)."""
        if self.past_time(note.beat, phrasing, start_time):
            return True
        if self.tunes and note.tune > self.tunes:
            return True
        if not self.bars or note.voice != 1:
            return False
        # a bar begun past the last, or a note so far into an overfull bar (the network may write
        # bars without bar lines) that it lies where bar ``bars + 1`` would have begun
        return phrasing.bars_with(note) > self.bars or note.beat >= phrasing.bar_end(self.bars, note.meter) - 1e-9

    def past_time(self, beat: float, phrasing: Phrasing, start_time: float) -> bool:
        """Whether ``beat`` sounds at or after the end that ``seconds`` sets (a note or a rest)."""
        return bool(self.seconds) and phrasing.tempo.time_at(beat) - start_time >= self.seconds

    def bars_heard(self, phrasing: Phrasing, end_beat: float, meter: str) -> int:
        """The bars a performance that ended at ``end_beat`` held, silent ones included, never
        more than ``bars`` asked for: what the closing line and the take report."""
        heard = phrasing.bars_by(end_beat, meter)
        return min(heard, self.bars) if self.bars else heard

    def silent_end(self, head: float, meter: str, phrasing: Phrasing, start_time: float) -> float | None:
        """Where the performance ends when what the composer knows up to ``head`` is silence (a
        rest, a tune with no note) that runs past ``seconds`` or bar ``bars``: the beat of that
        end, or None while it does not. Live play and render end there alike, by the clock, so
        a run of rests ends the performance on time instead of sounding as long as it is written.
        ``meter``: the tune being written's, for bars before any note."""
        ends = []
        if self.seconds:
            ends.append(phrasing.tempo.beat_at(start_time + self.seconds))
        if self.bars:
            ends.append(phrasing.bar_end(self.bars, meter))
        end = min(ends, default=None)
        return end if end is not None and head >= end - 1e-9 else None


def _order(note: ComposedNote | Release) -> tuple[float, int, int]:
    return note.beat, isinstance(note, Release), note.voice


class Engine:
    """Plays a Composer's notes on outputs in real time."""

    def __init__(
        self,
        composer: Composer,
        params: Parameters,
        outputs: list[Output],
        scheduler: Scheduler,
        limits: Limits = Limits(),
        phrasing: Phrasing | None = None,
        lookahead: float = 0.025,
        preroll: float = 0.2,
    ):
        self.composer = composer
        self.params = params
        self.outputs = outputs
        self.scheduler = scheduler
        self.limits = limits
        # notes are composed and handed over ``lookahead`` before their time, and earlier by what
        # the outputs render ahead (the numpy synth), so that no note is late by design
        self.output_lead = max((lead_of(out) for out in outputs), default=0.0)  # what the outputs render ahead
        self.lookahead = lookahead + self.output_lead
        self.preroll = preroll
        self.phrasing = phrasing or Phrasing(params)  # its tempo map is made before the outputs that follow it
        self.start_time = 0.0
        self.notes_played = 0
        self.late_notes = 0  # notes handed to the outputs after their onset time
        self.late_worst = 0.0  # the most one of them was late by, seconds
        self.resyncs = 0  # times the model fell so far behind that the timeline moved on
        self.last_off = 0.0  # when the last scheduled note ends
        self.failures = 0  # notes skipped because composing them failed (logged; the music goes on)
        self._failures_in_a_row = 0
        self._failure_logged_at = -1e9
        # (count before it, the note, when it sounds) of the latest notes, for views that read without waiting
        self.placed: deque[tuple[int, ComposedNote, ScheduledNote]] = deque(maxlen=1024)
        self.error: BaseException | None = None
        self.finished = threading.Event()  # set when the performance is over, for any reason
        self.stop_reason = ""
        self.end_beat: float | None = None  # where a limit ended the performance
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._closed = False
        self._close_lock = threading.Lock()
        self._pending: list[ComposedNote | Release] = []  # in order of time (voices composed ahead come in later)
        self._panicked = threading.Event()  # set by panic(): the model thread drops its pending notes
        self._new_tune = threading.Event()  # set by tune.new: the model thread stops waiting out a rest
        # cleared while a shared session is stopped (Link's start/stop): the model thread waits,
        # composing nothing, until it is set again
        self.rolling = threading.Event()
        self.rolling.set()
        self._halted_tune = 0  # the tune playing when the session stopped: its notes are not played after
        self._then: Callable[[], None] | None = None  # what resume asked to run first
        self._chores: deque[Callable[[], None]] = deque()  # work on the composer from other threads (call_soon)
        voices = [v.number for v in composer.ensemble.voices]
        self._mute = {n: f"voice.{n}.mute" for n in voices}
        self._muted_by = {name: n for n, name in self._mute.items()}
        self._thread = threading.Thread(target=self._run, name="model", daemon=True)
        params.listen(self._on_change, "panic", "tune.new", "hold", *(name for name in self._muted_by if name in params.specs))

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        # The first notes are composed before the clock starts: the first steps pay one-off costs
        # (caches, the kernel's threads waking) that must not make the opening notes late.
        self._take(self.composer.next_notes())  # nothing while a musician is to begin (instrument/live/listen.py)
        self.start_time = clock() + self.preroll
        self.phrasing.tempo.start(self.start_time)
        self.scheduler.start()
        for out in self.outputs:
            out.start(self.start_time)
        self._thread.start()

    def stop(self, reason: str = "stopped") -> None:
        """End now: silence, close outputs and recordings. Idempotent, any thread."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self.stop_reason = self.stop_reason or reason
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(2.0)
        self.scheduler.stop()
        now = clock()
        self._finish_tunes(cut=True)
        for out in self.outputs:
            try:
                out.close(now)
            except Exception:  # one broken output must not keep the others sounding
                log.exception("closing %s failed", getattr(out, "name", out))
        self.params.unlisten(self._on_change)
        self.finished.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.finished.wait(timeout)

    # -- the model thread -----------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._perform()
        except BaseException as error:  # the music stops, but nothing is left sounding
            self.error = error
            log.exception("the model thread failed")
            self.stop_reason = f"error: {error}"
        finally:
            if not self._closed:
                threading.Thread(target=self.stop, args=("ended",), name="stopper", daemon=True).start()

    def _take(self, notes: list[ComposedNote | Release]) -> None:
        """Composed notes wait in order of time, the lead first among notes at one beat."""
        for note in notes:
            bisect.insort(self._pending, note, key=_order)

    def _perform(self) -> None:
        composer, phrasing = self.composer, self.phrasing
        while not self._stopping.is_set():
            self._drop_after_panic()
            self._run_chores()
            if composer.waiting and not self._pending and self.rolling.is_set():
                self.halt(drop_tune=False)  # the musician's turn: silent, the clock running
            if not self.rolling.is_set() and not self._wait_rolling():
                return
            # compose only when the next note (or what is known of a rest) is nearly due, just in
            # time, or a beat group before that while an ensemble's chords hear each group whole
            compose_at = phrasing.tempo.time_at(composer.head - composer.lookahead_beats) - self.lookahead

            def due(beat: float = composer.head - composer.lookahead_beats) -> float:
                return phrasing.tempo.time_at(beat) - self.lookahead  # asked again on each wake: a tied map moves
            note = self._pending[0] if self._pending else None
            end = self.limits.silent_end(composer.head, composer.meter, phrasing, self.start_time)
            past = end is not None  # composed (or rests known) to the end that --seconds or --bars set
            if note is None and past:
                self._end_by_the_clock(end)  # a rest runs past the end: the clock ends it
                return
            if not past and (note is None or compose_at < phrasing.tempo.time_at(note.beat) - self.lookahead):
                if not self._sleep_until(due, self._new_tune):
                    return
                try:
                    now = phrasing.tempo.beat_at(clock() + self.lookahead)
                    self._take(composer.next_notes(now))
                except Exception as error:  # no control value or bug stops the music: skip the note
                    self._failed(error)
                    if not self._sleep_until(clock() + FAILURE_PAUSE_S):
                        return
                    continue
                self._failures_in_a_row = 0
                self._finish_tunes()
                continue
            if isinstance(note, ComposedNote) and self.limits.beyond(note, phrasing, self.start_time):
                self.stop_reason = "limit reached"
                self.end_beat = note.beat
                self._sleep_until(self.last_off + 0.05)  # let the last notes ring out
                return
            if not self._sleep_until(lambda: due(note.beat)):
                return
            if not self._pending or self._pending[0] is not note or not self.rolling.is_set():
                continue  # a panic dropped it while we waited, or the session stopped
            self._pending.pop(0)
            if isinstance(note, Release):
                self.release(note.voice, phrasing.tempo.time_at(note.beat))
            else:
                self._schedule(note)

    def _failed(self, error: Exception) -> None:
        """A note could not be composed: logged (with its traceback at most every 10 s), the
        composer recovers, and only a fault that survives recovery many times ends the music."""
        self.failures += 1
        self._failures_in_a_row += 1
        if self._failures_in_a_row > MAX_FAILURES_IN_A_ROW:
            raise error
        now = clock()
        if now - self._failure_logged_at >= 10.0:
            self._failure_logged_at = now
            log.error("a note could not be composed (%s: %s); skipped, playing on with plain controls "
                      "(%d so far)", type(error).__name__, excerpt(error), self.failures, exc_info=error)
        self.composer.recover()

    def _schedule(self, note: ComposedNote) -> None:
        phrasing = self.phrasing
        placed = phrasing.place(note)
        if self.params.get(self._mute[note.voice]):  # placed all the same: the lead's bars still count
            return
        now = clock()
        if placed.on < now - LATE_RESYNC_S:  # a stall: play on from now rather than rush
            phrasing.tempo.shift(now + self.lookahead - placed.on)
            self.resyncs += 1
            log.warning("fell %.0f ms behind; timeline moved on", (now - placed.on) * 1000)
            placed = phrasing.place(note)
        self.sound(note, placed)

    def sound_placed(self, placed: ScheduledNote, meter: str, bar_offset: float = 0.0, pitch: int | None = None) -> None:
        """Hand over a note placed in seconds by someone other than the model thread (an along
        voice, a musician's echo): its ComposedNote, for the views, read off the tempo map
        (``pitch``: as written, before transposition; default the placed one)."""
        tempo = self.phrasing.tempo
        beat = tempo.beat_at(placed.on)
        self.sound(ComposedNote(placed.pitch if pitch is None else pitch, beat, tempo.beat_at(placed.off) - beat,
                                bar_offset, meter, placed.tune, voice=placed.voice), placed)

    def sound(self, note: ComposedNote, placed: ScheduledNote) -> None:
        """Hand a note placed in time to every output (a muted voice's to none). The model
        thread's notes, and an along voice's from the listening thread while the model thread
        is parked (instrument/live/along.py), which places its own."""
        if self.params.get(self._mute[note.voice]):
            return
        now = clock()
        if placed.on < now:  # handed over after its time (the model thread was held up): it sounds
            # now, for every output alike, so the recording holds the time the listener heard it
            self.late_notes += 1
            self.late_worst = max(self.late_worst, now - placed.on)
            log.warning("a note was composed %.1f ms after its time", (now - placed.on) * 1000)
            placed = replace(placed, on=now, off=now + (placed.off - placed.on))
        for out in self.outputs:
            out.schedule(placed)
        self.placed.append((self.notes_played, note, placed))
        self.notes_played += 1
        self.last_off = max(self.last_off, placed.off)

    @property
    def bars(self) -> int:
        """Bars played so far, or held when a limit ended the performance (silent bars included)."""
        if self.end_beat is None:
            return self.phrasing.bars
        return self.limits.bars_heard(self.phrasing, self.end_beat, self.composer.meter)

    def _end_by_the_clock(self, end_beat: float) -> None:
        """``--seconds`` or ``--bars`` is up at ``end_beat`` while nothing more sounds before it:
        wait for the end, then stop."""
        if self._sleep_until(self.phrasing.tempo.time_at(end_beat)):
            self.stop_reason = "limit reached"
            self.end_beat = end_beat
            self._sleep_until(self.last_off + 0.05)  # let the last notes ring out

    def _wait_rolling(self) -> bool:
        """The shared session is stopped: wait for its Start (``--seconds`` still ends by the
        clock). False if the engine is stopping or the time is up."""
        while not self.rolling.wait(CHORE_POLL_S):
            if self._stopping.is_set():
                return False
            if self.limits.seconds and clock() - self.start_time >= self.limits.seconds:
                self.stop_reason = "limit reached"
                return False
            self._run_chores()
        self._run_chores()
        self._pending = [n for n in self._pending if n.tune > self._halted_tune]
        then, self._then = self._then, None
        if then is not None:
            then()
        else:
            beat = self._pending[0].beat if self._pending else self.composer.head
            self.phrasing.tempo.restart(beat, clock() + self.lookahead)  # a tied map then ties it anew
        return not self._stopping.is_set()

    def halt(self, drop_tune: bool = True) -> None:
        """The model thread places nothing until ``resume`` (a shared session stopped, or it is a
        musician's turn). ``drop_tune``: what it had composed of the tune being played is dropped
        then (the session's Start begins a new one). Any thread."""
        tune = self.composer.tune
        self._halted_tune = tune.number if drop_tune and tune is not None and self.start_time else 0
        self.rolling.clear()
        self._wake.set()

    def resume(self, then: Callable[[], None] | None = None) -> None:
        """Go on: ``then`` runs on the model thread before anything is placed (a musician's phrase
        fed to the composer, which places what follows on the tempo map as it is); without it the
        next note sounds as soon as it can. Any thread."""
        self._then = then
        self.rolling.set()
        self._wake.set()

    def call_soon(self, chore: Callable[[], None]) -> None:
        """Run ``chore`` on the model thread, which owns the composer: within ``CHORE_POLL_S`` while
        it is parked (a shared session stopped, a musician's turn), else before it composes next;
        chores run in order, and before what ``resume`` asked. Any thread (a musician's tokens,
        written into the tune as they are heard)."""
        self._chores.append(chore)
        self._wake.set()

    def _run_chores(self) -> None:
        while self._chores:
            chore = self._chores.popleft()
            try:
                chore()
            except Exception:  # what a musician plays never stops the music
                log.exception("work handed to the model thread failed")

    def retime(self) -> None:
        """The timeline moved (a shared session's tempo or transport): the model thread looks
        again at when its next note is due. Any thread."""
        self._wake.set()

    def _sleep_until(self, when: float | Callable[[], float], interrupt: threading.Event | None = None) -> bool:
        """Sleep until ``when`` (a time, or asked again on each wake: a tied tempo map moves)
        unless woken (panic, stop) or ``interrupt`` is set (it is cleared); False if the engine is
        stopping."""
        while not self._stopping.is_set():
            if interrupt is not None and interrupt.is_set():
                interrupt.clear()
                return True
            left = (when() if callable(when) else when) - clock()
            if left <= 0:
                return True
            self._wake.wait(min(left, 0.1))
            self._wake.clear()
            self._drop_after_panic()
        return False

    def release(self, voice: int, at: float, pitch: int | None = None) -> None:
        """End every note ``voice`` sounds at ``at`` (of ``pitch`` only, if given), on every output
        (any thread: a drone at its tune's end, a voice being muted, a musician's echoed key let go)."""
        for out in self.outputs:
            try:
                out.release(voice, at) if pitch is None else out.release(voice, at, pitch)
            except Exception:
                log.exception("release on %s failed", getattr(out, "name", out))

    def _drop_after_panic(self) -> None:
        if self._panicked.is_set():
            self._panicked.clear()
            self._pending.clear()

    def panic(self) -> None:
        """Silence now, from the caller's thread (a controller's): every output ends its sounding
        notes at once, and the model thread drops the notes it composed but has not handed over.
        The one way a panic is delivered: the ``panic`` trigger calls it."""
        now = clock()
        for out in self.outputs:
            try:
                out.panic(now)
            except Exception:
                log.exception("panic on %s failed", getattr(out, "name", out))
        self._panicked.set()
        self._wake.set()

    def _on_change(self, change) -> None:
        if change.name == "panic":
            self.panic()
        elif change.name in self._muted_by and change.value:  # a voice muted: what it sounds ends now
            self.release(self._muted_by[change.name], clock())
        elif change.name in ("tune.new", "hold"):
            if change.name == "tune.new":
                self._new_tune.set()
            self._wake.set()

    def _finish_tunes(self, cut: bool = False) -> None:
        """Hand finished tunes (and, at the end, the tune cut off) to the outputs."""
        if cut:
            self.composer.cut()
        while self.composer.finished:
            number, tune = self.composer.finished.popleft()
            for out in self.outputs:
                try:
                    out.tune(number, tune)
                except Exception:
                    log.exception("%s could not take tune %d", getattr(out, "name", out), number)
