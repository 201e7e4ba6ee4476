"""The clock every part reads, and the timing thread that runs actions at absolute times on it.

It sits below ``live/`` and ``outputs/`` (docs/design.md §6): the engine hands it notes and the
outputs that must act at an instant (a MIDI port) run on it, so both import it and neither needs
the other for it.

It waits on an event until a little before an action is due (so a new, earlier action can
wake it), then sleeps the last stretch in C until the exact instant: ``clock_nanosleep`` on the
monotonic clock with an absolute deadline and no timer slack, without the GIL. It used to spin
in Python for that last ~1.2 ms before every event, holding the GIL (or fighting for it) the
whole while, which kept the audio callback of the numpy synth waiting (docs/audio.md).
Producers (the model thread) never wait for it: they append to a queue and set an event. It
keeps the onset error of every event it ran (when it ran minus when it was due) for the
benchmark and the live view.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import heapq
import itertools
import logging
import os
import sys
import threading
import time
from collections import deque
from typing import Callable

log = logging.getLogger(__name__)

REALTIME_PRIORITY = 40  # below JACK's own threads (typically 70+), above everything else
clock = time.perf_counter  # CLOCK_MONOTONIC on Linux: never jumps, high resolution

Action = Callable[[float], None]  # called with the time it was due


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _precise_sleeper() -> Callable[[float], None]:
    """``sleep_until(t)``: sleep until ``t`` on ``clock`` in C, the GIL released (ctypes releases it
    around the call). Linux: clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME), the clock that
    ``perf_counter`` reads; elsewhere time.sleep of what is left (also without the GIL)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        nanosleep = libc.clock_nanosleep
        nanosleep.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Timespec), ctypes.c_void_p]
        if sys.platform != "linux" or time.clock_gettime(time.CLOCK_MONOTONIC) - clock() > 0.001:
            raise OSError("perf_counter is not CLOCK_MONOTONIC here")
    except (OSError, AttributeError):
        return lambda t: time.sleep(max(0.0, t - clock()))
    monotonic, absolute = time.CLOCK_MONOTONIC, 1  # TIMER_ABSTIME

    def sleep_until(t: float) -> None:
        spec = _Timespec(int(t), int((t - int(t)) * 1e9))
        while nanosleep(monotonic, absolute, ctypes.byref(spec), None) == 4:  # EINTR: a signal; sleep on
            pass
    return sleep_until


def realtime(priority: int = REALTIME_PRIORITY) -> bool:
    """Ask the kernel for real-time (FIFO) scheduling of the calling thread, as audio software does:
    under load a normal thread waits milliseconds for a core, a FIFO one does not. Returns whether
    it was granted (without permission, ``ulimit -r``, the thread runs on at normal priority)."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        return True
    except (AttributeError, OSError):
        return False


def realtime_refused() -> str | None:
    """Why this process's threads cannot run at real-time priority, in a few words, or None where
    they can. A short-lived thread of its own asks, so no thread of the caller changes."""
    if not hasattr(os, "sched_setscheduler"):
        return "this system has no real-time scheduling"
    why: list[str] = []

    def ask() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
        except OSError as error:
            why.append(error.strerror or str(error))

    probe = threading.Thread(target=ask, name="realtime-probe", daemon=True)
    probe.start()
    probe.join(5.0)
    if not why:
        return None
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_RTPRIO)[0]
        if limit != resource.RLIM_INFINITY and limit < REALTIME_PRIORITY:
            return f"'ulimit -r' is {limit} (needs {REALTIME_PRIORITY}; the audio group's limits.conf gives 95)"
    except (ImportError, OSError, ValueError):
        pass
    return why[0]


_named: set[tuple[int, str]] = set()


def name_native_threads() -> None:
    """Give every Python thread its name in the kernel too (15 characters of it), so that ``top -H``,
    ``perf`` and bench/audio.py can tell the model thread from the timing thread or the OSC server:
    Python (before 3.14) leaves them all named after the process. Linux; elsewhere nothing."""
    for thread in threading.enumerate():
        tid, name = thread.native_id, thread.name[:15]
        if tid is None or (tid, name) in _named:
            continue
        _named.add((tid, name))
        try:
            with open(f"/proc/self/task/{tid}/comm", "w") as comm:
                comm.write(name)
        except OSError:
            pass


def _no_timer_slack() -> None:
    """Linux lets a normal thread's timers fire up to 50 us late to save power: not this thread."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK, 1 ns
    except (OSError, AttributeError):
        pass


class Scheduler:
    """A heap of (due time, action) run by one dedicated thread."""

    SPIN_S = 0.002  # the last stretch is slept in C (an event wait can wake a scheduler quantum late)

    def __init__(self, name: str = "timing", spin_s: float | None = None, switch_interval_s: float = 0.0005, realtime: bool = True):
        self.realtime = realtime
        self.priority = "normal"
        self.spin_s = self.SPIN_S if spin_s is None else spin_s
        self._inbox: deque[tuple[float, int, Action]] = deque()  # append/popleft are atomic
        self._heap: list[tuple[float, int, Action]] = []
        self._seq = itertools.count()
        self._wake = threading.Event()
        self._running = False
        self._clear: deque[Action | None] = deque()
        self.errors: deque[float] = deque(maxlen=100_000)  # onset errors in seconds
        self._sleep_until = _precise_sleeper()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        # A thread that wakes must get the GIL quickly; Python's default hand-over is 5 ms.
        if switch_interval_s and sys.getswitchinterval() > switch_interval_s:
            sys.setswitchinterval(switch_interval_s)

    def start(self) -> None:
        self._running = True
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread; events not yet due are dropped (the caller sends note-offs)."""
        self._running = False
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def at(self, due: float, action: Action) -> None:
        """Run ``action(due)`` at ``due`` (seconds on ``clock``). Safe from any thread."""
        self._inbox.append((due, next(self._seq), action))
        self._wake.set()

    def clear(self, then: Action | None = None) -> None:
        """Forget every event not yet run, then run ``then`` in the timing thread (panic: the
        note-offs go out from the same thread as the notes, never interleaved with them)."""
        self._clear.append(then)
        self._wake.set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _raise_priority(self) -> None:
        """Real-time (FIFO) scheduling where allowed (``realtime``); without it, carry on at normal
        priority and say so once (``play`` says what that costs, ``realtime_refused``)."""
        if not self.realtime:
            return
        if realtime(REALTIME_PRIORITY):
            self.priority = f"realtime (FIFO {REALTIME_PRIORITY})"
        else:
            log.info("timing thread runs at normal priority (no real-time permission: see 'ulimit -r')")

    def _run(self) -> None:
        self._raise_priority()
        _no_timer_slack()
        heap, inbox = self._heap, self._inbox
        while self._running:
            while inbox:
                heapq.heappush(heap, inbox.popleft())
            while self._clear:
                then = self._clear.popleft()
                heap.clear()
                if then is not None:
                    try:
                        then(clock())
                    except Exception:
                        log.exception("clear action failed")
            if not heap:
                self._wake.wait(0.05)
                self._wake.clear()
                continue
            due = heap[0][0]
            wait = due - clock() - self.spin_s
            if wait > 0:
                self._wake.wait(wait)
                self._wake.clear()
                continue  # re-check: something earlier may have arrived
            self._sleep_until(due)
            due, _, action = heapq.heappop(heap)
            now = clock()
            try:
                action(due)
            except Exception:  # an output failing must not stop the clock
                log.exception("scheduled action failed")
            self.errors.append(now - due)
