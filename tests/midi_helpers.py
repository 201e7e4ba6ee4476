"""A JACK MIDI client in the test process that keeps what it receives, the port under test, what a
listener heard, and small waits."""

from __future__ import annotations

import os
import socket
import statistics
import struct
import subprocess
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import rtmidi

from instrument.timing import clock
from instrument.midi.messages import ALL_NOTES_OFF, CLOCK_TICK, CONTINUE, CONTROL, NOTE_OFF, NOTE_ON, START, STOP
from instrument.midi.ports import jack_server_socket, realtime_jack_threads  # noqa: F401 (re-exported for the tests)
from instrument.outputs.midi_port import MidiPort, open_midi_port


class Receiver:
    """A JACK MIDI input port ``client:port`` keeping (arrival time on clock(), message).

    rtmidi queues messages inside JACK's process callback and a thread here polls the queue: a
    Python callback there would wait for the GIL past the 0.67 ms period, while the sender
    rewrites the buffer being read (messages then come garbled). Its JACK threads get real-time
    priority (``realtime_jack_threads``).
    Arrival times are rtmidi's own timestamps (JACK's microsecond clock), placed on ``clock()``
    by the earliest poll: each poll happens after the arrival, so the smallest (poll time -
    timestamp) is the offset.
    """

    def __init__(self, client: str = "test-receiver", port: str = "in"):
        self.name = f"{client}:{port}"
        self._raw: list[tuple[float, float, list[int]]] = []  # (poll time, rtmidi time, message)
        with realtime_jack_threads():
            self._in = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name=client, queue_size_limit=8192)
        self._in.ignore_types(sysex=False, timing=False, active_sense=False)
        self._in.open_virtual_port(port)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name=f"receiver {self.name}", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        stamp = 0.0
        while not self._stop.is_set():
            event = self._in.get_message()
            if event is None:
                time.sleep(0.001)
                continue
            message, delta = event
            stamp += delta
            self._raw.append((clock(), stamp, message))

    @property
    def messages(self) -> list[tuple[float, list[int]]]:
        raw = list(self._raw)
        if not raw:
            return []
        offset = min(polled - stamp for polled, stamp, _ in raw)
        return [(offset + stamp, message) for _, stamp, message in raw]

    def listen_to(self, source: str) -> None:
        """Connect the JACK output port whose name contains ``source`` to this one."""
        sources = [p for p in self._in.get_ports() if source in p]
        assert len(sources) == 1, f"expected one port matching {source!r}: {self._in.get_ports()}"
        subprocess.run(["jack_connect", sources[0], self.name], check=True, capture_output=True, timeout=10)

    def of(self, *statuses: int) -> list[tuple[float, list[int]]]:
        """The messages whose status byte (channel masked for channel messages) is one of these."""
        return [(t, m) for t, m in self.messages if (m[0] if m[0] >= 0xF0 else m[0] & 0xF0) in statuses]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._in.close_port()
        self._in.delete()


class ClockSource:
    """A JACK MIDI output port ``client:out`` that plays a clock from a thread."""

    def __init__(self, client: str = "Clock Source"):
        with realtime_jack_threads():
            self._out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=client)
        self._out.open_virtual_port("out")
        self.name = f"{client}:out"

    def connect(self, destination: str) -> None:
        subprocess.run(["jack_connect", self.name, destination], check=True, capture_output=True, timeout=10)

    def play(self, script: list[tuple[str, float]]) -> threading.Thread:
        """Run ``script`` in a thread: ('start'|'continue'|'stop', 0) or ('ticks', qpm) * count."""
        def run():
            due = clock() + 0.02
            for what, value in script:
                if what == "ticks":
                    count, qpm = value
                    for _ in range(count):
                        self._at(due, [CLOCK_TICK])
                        due += 60.0 / qpm / 24
                else:
                    self._at(due, [{"start": START, "continue": CONTINUE, "stop": STOP}[what]])
                    due += 0.1 if what == "stop" else 0.0
        thread = threading.Thread(target=run, name="clock source", daemon=True)
        thread.start()
        return thread

    def _at(self, due: float, message: list[int]) -> None:
        while clock() < due - 0.002:
            time.sleep(0.001)
        while clock() < due:
            pass
        self._out.send_message(message)

    def close(self) -> None:
        self._out.close_port()
        self._out.delete()


@contextmanager
def realtime_jack_server(priority: int = 70) -> Iterator[None]:
    """Run the test JACK server's threads at real-time (FIFO) priority for a while, where allowed,
    then put them back. Started with ``--no-realtime``, on a busy machine it runs cycles late,
    and a client can miss a cycle and lose its messages (seen here at about 1 in 1000, even by
    jack_midi_dump); a real-time server, as musicians run, does not."""
    saved = {}
    try:
        pid = _jack_server_pid()
        for tid in os.listdir(f"/proc/{pid}/task"):
            saved[int(tid)] = (os.sched_getscheduler(int(tid)), os.sched_getparam(int(tid)))
            os.sched_setscheduler(int(tid), os.SCHED_FIFO, os.sched_param(priority))
    except OSError:
        pass  # no permission, or no such server: as it is
    try:
        yield
    finally:
        for tid, (policy, param) in saved.items():
            try:
                os.sched_setscheduler(tid, policy, param)
            except OSError:
                pass


def start_jack(name: str, frames: int = 32, realtime: bool = False) -> subprocess.Popen:
    """A JACK dummy server of our own under ``name``, ``frames`` per period at 48 kHz (for tests
    that stop and restart it, or need another period). ``realtime``: real-time priority (-R) where
    allowed, as a performer's server runs (else, or where refused, without)."""
    command = ["-n", name, "-d", "dummy", "-r", "48000", "-p", str(frames)]
    if realtime:
        proc = subprocess.Popen(["jackd", "-R", "-P", "70", *command], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        if proc.poll() is None:
            if subprocess.run(["jack_wait", "-w", "-t", "10", "-s", name], capture_output=True).returncode == 0:
                return proc
            proc.kill()
            proc.wait(5)
    proc = subprocess.Popen(["jackd", "--no-realtime", *command],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if subprocess.run(["jack_wait", "-w", "-t", "10", "-s", name], capture_output=True).returncode != 0:
        proc.kill()
        why = proc.communicate()[1].strip().splitlines()[-3:]
        running = subprocess.run(["pgrep", "-c", "-x", "jackd"], capture_output=True, text=True).stdout.strip()
        raise AssertionError(f"could not start a JACK server {name!r} ({running} jackd already run here; "
                             f"JACK allows a few servers per machine): {why}")
    return proc


def stop_jack(server: subprocess.Popen) -> None:
    """Stop a server from ``start_jack`` (idempotent)."""
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


def jack_ports(server: str) -> str:
    """``jack_lsp`` of the server named ``server`` ('' when it does not answer: a jack_lsp that hangs
    on a server busy with a client coming or going is killed, and the caller asks again)."""
    env = dict(os.environ, JACK_DEFAULT_SERVER=server, JACK_NO_START_SERVER="1")
    try:
        return subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True, timeout=10).stdout
    except subprocess.TimeoutExpired:
        return ""


def connections(port: str) -> list[str]:
    """The ports connected to ``port`` on the test's JACK server (``jack_lsp -c``)."""
    lines = subprocess.run(["jack_lsp", "-c"], capture_output=True, text=True, timeout=10).stdout.splitlines()
    out, current = [], None
    for line in lines:
        if line.startswith((" ", "\t")):
            if current == port:
                out.append(line.strip())
        else:
            current = line.strip()
    return out


def _jack_server_pid() -> int:
    """The JACK server's process, from its socket's peer credentials."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.connect(jack_server_socket())
        pid, _, _ = struct.unpack("3i", probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return pid


def _threads() -> set[int]:
    return {int(tid) for tid in os.listdir("/proc/self/task")}


def wait_for(condition, timeout: float = 5.0, step: float = 0.02) -> bool:
    """Poll ``condition()`` until it is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())


def midi_port(target, scheduler, **options) -> MidiPort:
    """The port under test, its JACK thread real-time as under a real-time server."""
    with realtime_jack_threads():
        return open_midi_port(target, "jack", scheduler, **options)


def sounding_after(messages) -> dict[tuple[int, int], int]:
    """(channel, pitch) -> how many note-ons are not yet ended, after All Notes Off is honoured."""
    sounding: dict[tuple[int, int], int] = {}
    for _, m in messages:
        kind, channel = m[0] & 0xF0, m[0] & 0x0F
        if kind == NOTE_ON and m[2] > 0:
            sounding[(channel, m[1])] = sounding.get((channel, m[1]), 0) + 1
        elif kind == NOTE_OFF or (kind == NOTE_ON and m[2] == 0):
            if sounding.get((channel, m[1])):
                sounding[(channel, m[1])] -= 1
    return {k: v for k, v in sounding.items() if v}


def heard_notes(messages) -> tuple[list[tuple[float, float, int, int]], int, list]:
    """What a listener heard in ``messages`` ((time, message) as a Receiver keeps them): (on, off,
    pitch, channel) of every note, the most sounding at once, and the notes still sounding at the
    end. A note ends at its note-off, at the same key struck again, or at All Notes Off."""
    sounding: dict[tuple[int, int], float] = {}
    notes, most = [], 0
    for t, m in messages:
        kind, channel = m[0] & 0xF0, m[0] & 0x0F
        if kind == NOTE_ON and m[2] > 0:
            if (channel, m[1]) in sounding:
                notes.append((sounding.pop((channel, m[1])), t, m[1], channel))
            sounding[(channel, m[1])] = t
            most = max(most, len(sounding))
        elif kind == NOTE_OFF or (kind == NOTE_ON and m[2] == 0):
            if (channel, m[1]) in sounding:
                notes.append((sounding.pop((channel, m[1])), t, m[1], channel))
        elif kind == CONTROL and m[1] == ALL_NOTES_OFF:
            for key in [k for k in sounding if k[0] == channel]:
                notes.append((sounding.pop(key), t, key[1], channel))
    return sorted(notes), most, list(sounding.items())


def losses_not_in_stalls(recorded: list, pairs: list, offset: float, xrun_times: list[float],
                         window: float) -> list:
    """Recorded notes the listener never heard, with no server xrun within ``window`` s of when
    they were due (recorded onset + ``offset``, on ``clock()``). A dummy server on a VM misses its
    0.67 ms cycles now and then, and a message in a missed cycle is lost: the listener hears that
    as the xrun the server reports to every client. A loss with no xrun is ours."""
    heard = {id(r) for _, r in pairs}
    return [r for r in recorded if id(r) not in heard
            and not any(abs(r[0] + offset - x) <= window for x in xrun_times)]


def match_notes(heard: list, recorded: list, window: float = 0.1) -> list[tuple[tuple, tuple]]:
    """Pairs (heard, recorded) of the same pitch and channel whose onsets agree within ``window``
    after the median offset (estimated from the first notes in order); notes are (on, off, pitch,
    channel) in onset order. Matched by key, so the notes of a chord pair up whatever order
    they came in."""
    first = min(len(heard), len(recorded), 50)
    offset = statistics.median(h[0] - r[0] for h, r in zip(heard[:first], recorded[:first])) if first else 0.0
    by_key: dict[tuple[int, int], list] = {}
    for h in heard:
        by_key.setdefault((h[2], h[3]), []).append(h)
    used: dict[tuple[int, int], int] = {}
    pairs = []
    for r in recorded:
        key = (r[2], r[3])
        candidates = by_key.get(key, [])
        i = used.get(key, 0)
        while i < len(candidates) and candidates[i][0] - offset < r[0] - window:
            i += 1
        if i < len(candidates) and abs(candidates[i][0] - offset - r[0]) <= window:
            pairs.append((candidates[i], r))
            i += 1
        used[key] = i
    return pairs
