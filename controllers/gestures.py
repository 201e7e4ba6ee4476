"""Gesture streams without an armband: record Myo Mapper's OSC to a file, send a recording
back with its original timing, or send a plausible synthetic stream for demos.

A recording is JSON Lines, one message a line: ``{"t": 0.02, "address": "/myo1/pose",
"args": ["fist"]}``, ``t`` in seconds from the first message.
"""

from __future__ import annotations

import json
import math
import random
import socket
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator

from pythonosc.osc_message_builder import OscMessageBuilder

from controllers.osc import OscListener
from controllers.report import Reporter
from instrument.errors import UsageError

Event = tuple[float, str, list]  # (seconds from the start, address, args)
RATE_HZ = 50.0  # Myo Mapper's orientation and EMG rate


def record(path: str | Path, host: str = "127.0.0.1", port: int = 5432, seconds: float | None = None,
           stop: threading.Event | None = None, ready: threading.Event | None = None) -> int:
    """Write every OSC message arriving on ``host:port`` to ``path`` until ``seconds`` pass or
    ``stop`` is set (Ctrl-C also ends it cleanly; each line is flushed as it comes, so a killed
    recording keeps what it had). ``ready`` is set once listening. Returns the messages written."""
    stop = stop or threading.Event()
    lock = threading.Lock()
    count = 0
    t0: list[float] = []
    with open(path, "w", encoding="utf-8") as out:
        def keep(address: str, args: list, sender: tuple) -> None:
            nonlocal count
            now = time.monotonic()
            with lock:
                if not t0:
                    t0.append(now)
                out.write(json.dumps({"t": round(now - t0[0], 6), "address": address, "args": _jsonable(args)}) + "\n")
                out.flush()
                count += 1

        listener = OscListener(keep, host, port, Reporter("record"), flag="--port", name="gestures-record")
        if ready is not None:
            ready.set()
        try:
            stop.wait(seconds)
        except KeyboardInterrupt:
            pass
        finally:
            listener.close()
    return count


def _jsonable(args: list) -> list:
    return [a if isinstance(a, (int, float, str, bool)) or a is None else repr(a) for a in args]


def load(path: str | Path) -> list[Event]:
    """A recording's events; UsageError naming FILE:LINE for a line that is not one."""
    events: list[Event] = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise UsageError(f"{path}: cannot read the recording ({error.strerror or error})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            event = (float(item["t"]), str(item["address"]), list(item.get("args", [])))
        except (ValueError, KeyError, TypeError) as error:
            raise UsageError(f"{path}:{number}: not a recorded message ({error}); expected "
                             '{"t": SECONDS, "address": "/myo1/...", "args": [...]}') from None
        if not event[1].startswith("/"):
            raise UsageError(f"{path}:{number}: address {event[1]!r} does not start with /")
        events.append(event)
    if not events:
        raise UsageError(f"{path}: the recording is empty")
    return events


def send(events: Iterable[Event], host: str = "127.0.0.1", port: int = 5432, speed: float = 1.0,
         stop: threading.Event | None = None) -> int:
    """Send ``events`` to ``host:port`` at their times (divided by ``speed``). Returns how many."""
    stop = stop or threading.Event()
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    start = time.monotonic()
    count = 0
    try:
        for t, address, args in events:
            delay = start + t / speed - time.monotonic()
            if delay > 0 and stop.wait(delay):
                break
            if stop.is_set():
                break
            builder = OscMessageBuilder(address)
            for arg in args:
                builder.add_arg(arg)
            try:
                sock.sendto(builder.build().dgram, (host, port))
            except OSError:
                pass  # nobody listening (UDP): keep time and go on, as the armband would
            count += 1
    finally:
        sock.close()
    return count


def looped(events: list[Event], loop: bool) -> Iterator[Event]:
    """The events once, or again and again with the times running on (one period apart)."""
    period = events[-1][0] - events[0][0] + 1.0 / RATE_HZ
    offset = 0.0
    while True:
        for t, address, args in events:
            yield t - events[0][0] + offset, address, args
        if not loop:
            return
        offset += period


def synthetic(seconds: float | None = None, armband: int = 1, seed: int | None = None) -> Iterator[Event]:
    """A plausible Myo Mapper stream at 50 Hz: slow orientation sweeps, EMG bursts (a muscle
    tensing every few seconds) over a little noise, and a pose now and then (then rest)."""
    rng = random.Random(seed)
    prefix = f"/myo{armband}"
    gains = [0.6 + 0.8 * rng.random() for _ in range(8)]
    pose, pose_until, next_pose = "rest", 0.0, 3.0
    step = 1.0 / RATE_HZ
    n = 0
    yield 0.0, f"{prefix}/pose", ["rest"]
    while seconds is None or n * step < seconds:
        t = n * step
        yaw = 0.5 + 0.4 * math.sin(2 * math.pi * t / 17.0)
        pitch = 0.5 + 0.45 * math.sin(2 * math.pi * t / 11.0)
        roll = 0.5 + 0.3 * math.sin(2 * math.pi * t / 7.0 + 1.0)
        yield t, f"{prefix}/orientation/scaled", [yaw, pitch, roll]
        burst = max(0.0, math.sin(2 * math.pi * t / 6.0)) ** 4
        emg = [min(1.0, abs(g * (0.03 + 0.6 * burst) + rng.gauss(0, 0.02))) for g in gains]
        yield t, f"{prefix}/emg/scaled/abs", emg
        yield t, f"{prefix}/emg/scaled/abs/mav", [sum(emg) / 8]
        if pose != "rest" and t >= pose_until:
            pose = "rest"
            yield t, f"{prefix}/pose", [pose]
        elif pose == "rest" and t >= next_pose:
            pose = rng.choices(["waveIn", "waveOut", "fist", "fingersSpread", "doubleTap"], [4, 4, 2, 1, 0.3])[0]
            pose_until, next_pose = t + 0.6, t + rng.uniform(4.0, 9.0)
            yield t, f"{prefix}/pose", [pose]
        n += 1


class GestureFeed:
    """A synthetic stream or a looped recording sent from a thread (``play --gestures``)."""

    def __init__(self, source: str, host: str, port: int):
        events = synthetic() if source == "synthetic" else looped(load(source), loop=True)
        self.source = source
        self._stop = threading.Event()
        self._thread = threading.Thread(target=send, args=(events, host, port), kwargs={"stop": self._stop},
                                        name="gesture-feed", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
