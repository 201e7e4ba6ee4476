"""A JACK MIDI client that keeps what it receives, the port under test, what a listener heard
matched against what was recorded (a MIDI file's notes)."""

from __future__ import annotations

import statistics
import subprocess
import threading
import time

import mido
import rtmidi

from instrument.timing import clock
from instrument.midi.messages import ALL_NOTES_OFF, CLOCK_TICK, CONTINUE, CONTROL, NOTE_OFF, NOTE_ON, START, STOP
from instrument.midi.ports import close_client, realtime_jack_threads
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

    def listen_to_play(self, proc: subprocess.Popen, source: str | None = None, timeout: float = 60.0) -> None:
        """Connect to the output port of ``run.py play`` (``proc``) once it has opened it: its name
        holds ``source`` (default the instrument's ``PRODUCT:``). AssertionError, with what the
        process said, if it ended or ``timeout`` passed first."""
        from instrument.midi.ports import PRODUCT

        source = source or f"{PRODUCT}:"
        deadline = time.monotonic() + timeout
        while not [p for p in self._in.get_ports() if p.startswith(source)]:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"play did not open its MIDI port: {proc.stderr.read()[-500:] if proc.stderr else ''}")
            time.sleep(0.05)  # polling for the port to appear
        self.listen_to(source)

    def of(self, *statuses: int) -> list[tuple[float, list[int]]]:
        """The messages whose status byte (channel masked for channel messages) is one of these."""
        return [(t, m) for t, m in self.messages if (m[0] if m[0] >= 0xF0 else m[0] & 0xF0) in statuses]

    def close(self, server_gone: bool = False) -> None:
        """Stop listening and close the port; ``server_gone``: its JACK server died, so the client
        is abandoned instead (closing it crashes python-rtmidi once a new server runs). Idempotent.
        Close a ``JackRecorder`` of the same process first: rtmidi closes its client holding the
        GIL, and the JACK server waits for every client's cycle, a Python callback among them."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(2)
        close_client(self._in, server_gone=server_gone)


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


def midi_port(target, scheduler, **options) -> MidiPort:
    """The port under test, its JACK thread real-time as under a real-time server."""
    with realtime_jack_threads():
        return open_midi_port(target, "jack", scheduler, **options)


def sounding_after(messages) -> dict[tuple[int, int], int]:
    """(channel, pitch) -> how many note-ons are not yet ended by their own note-offs (All Notes
    Off aside: what is left here is a note-on whose note-off never came)."""
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


def notes_in(path) -> tuple[list, list]:
    """(on, off, pitch, velocity, channel) in seconds from the file's start, and the other events."""
    song = mido.MidiFile(path)
    now, sounding, notes, others = 0.0, {}, [], []
    for message in song:  # iterating a MidiFile gives times in seconds, the tempo applied
        now += message.time
        if message.type == "note_on" and message.velocity > 0:
            sounding[(message.channel, message.note)] = (now, message.velocity)
        elif message.type in ("note_off", "note_on"):
            on, velocity = sounding.pop((message.channel, message.note))
            notes.append((on, now, message.note, velocity, message.channel + 1))
        else:
            others.append((now, message))
    assert not sounding, "a note-on without its note-off"
    return sorted(notes), others
