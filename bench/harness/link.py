"""Ableton Link for tests and benchmarks, kept off every network: a loopback-only network
namespace, a test peer of our own, and the peer's beat at a listener's arrival times.

Link announces itself by multicast on every interface, so anything here that enables Link runs
in a network namespace that holds the loopback interface alone (``isolated``: ``unshare -n``,
then ``ip link set lo up``), and asserts that before a Link instance is made (``LinkPeer``).
Two peers in one such namespace find each other on loopback.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from instrument.timing import clock

ISOLATED_ENV = "FOLK_INSTRUMENT_LOOPBACK_ONLY"


def interfaces() -> list[str]:
    return [name for _, name in socket.if_nameindex()]


def assert_loopback_only() -> None:
    """Refuse to go on where any network interface but loopback is present."""
    names = interfaces()
    if names != ["lo"]:
        raise AssertionError(f"Link may only run where loopback is the one network interface; here: {names}")


def isolation_refused() -> str | None:
    """Why a loopback-only namespace cannot be made here (None: it can)."""
    try:
        done = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unshare: {error}"
    return None if done.returncode == 0 else f"unshare -n refused: {done.stderr.strip()[:200]}"


def isolated(argv: list[str]) -> list[str]:
    """``argv`` (a Python command) as run inside a fresh network namespace with loopback up."""
    script = 'ip link set lo up && exec "$@"'
    return ["unshare", "-n", "sh", "-c", script, "sh", *argv]


def run_isolated(module: str, *args: str, timeout: float, cwd=None) -> subprocess.CompletedProcess:
    """Run ``python -m module args`` in a loopback-only namespace; its own output is kept."""
    env = {**os.environ, ISOLATED_ENV: "1"}
    return subprocess.run(isolated([sys.executable, "-m", module, *args]), capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


@dataclass(frozen=True)
class PeerReading:
    time: float  # on clock()
    beat: float
    tempo: float


class LinkPeer:
    """A Link peer of the test's own (aalink directly, nothing of the instrument's), in an asyncio
    loop thread. Its readings (every ``every_s``) place a listener's arrivals on its beat
    (``peer_beat``)."""

    def __init__(self, bpm: float, quantum: float = 4.0, start_stop: bool = False, every_s: float = 0.02):
        assert_loopback_only()
        import aalink

        self.quantum = quantum
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="test-peer-link", daemon=True).start()

        async def make():
            return aalink.Link(bpm)

        self.link = asyncio.run_coroutine_threadsafe(make(), self._loop).result(10)
        self.link.quantum = quantum
        self.link.start_stop_sync_enabled = start_stop
        self.link.enabled = True
        self.readings: list[PeerReading] = []
        self._stop = threading.Event()
        self._every = every_s
        self._reader = threading.Thread(target=self._read, name="test-peer-readings", daemon=True)
        self._reader.start()

    def reading(self) -> PeerReading:
        link = self.link
        tempo = link.tempo
        before = clock()
        beat = link.beat
        after = clock()
        return PeerReading((before + after) / 2, float(beat), float(tempo))

    def _read(self) -> None:
        while not self._stop.wait(self._every):
            self.readings.append(self.reading())

    def close(self) -> None:
        self._stop.set()
        self._reader.join(1)
        self.link.enabled = False
        self._loop.call_soon_threadsafe(self._loop.stop)


def peer_beat(readings: list[PeerReading], t: float) -> tuple[float, float]:
    """The peer's beat and tempo at ``t`` (clock()), from its last reading before ``t`` (the
    session's timeline is a line between tempo changes)."""
    best = readings[0]
    for r in readings:
        if r.time > t:
            break
        best = r
    return best.beat + (t - best.time) * best.tempo / 60.0, best.tempo


def grid_error_ms(beat: float, tempo: float, steps: tuple[float, ...] = (1 / 4, 1 / 3)) -> float:
    """How far (ms) ``beat`` lies from the nearest point of the tune's grid: sixteenths and
    triplet eighths of a quarter-note beat."""
    nearest = min((abs(beat - round(beat / step) * step) for step in steps))
    return nearest * 60_000.0 / tempo


def wait_for_peers(link, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while link.num_peers == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    return link.num_peers > 0
