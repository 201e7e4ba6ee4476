"""Storms of controls, each in a process of its own: an OSC flood at a UDP port, a MIDI CC flood from a
JACK port, and a stub listener that takes both and does nothing with them (the baseline of a run:
the same floods and the same machine load, without the instrument). For bench/realtime.py,
bench/audio.py and the storm test.
"""

from __future__ import annotations

import os
import subprocess
import sys

# OSC messages at ``rate`` a second for ``seconds``: four parameters, an unknown address and garbage.
# Prints how many it sent and its own CPU seconds.
OSC_FLOOD = r"""
import random, socket, sys, time
from pythonosc.osc_message_builder import OscMessageBuilder
port, rate, seconds = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
names = ["/stimulation/weight", "/bias/rests", "/accent", "/swing", "/no/such/address"]
packets = []
for i in range(500):
    b = OscMessageBuilder(address=random.choice(names)); b.add_arg(random.random() * 0.2)
    packets.append(b.build().dgram)
packets += [bytes(random.getrandbits(8) for _ in range(24)) for _ in range(20)]  # garbage too
t0 = time.perf_counter(); n = 0
while True:
    due = t0 + n / rate
    now = time.perf_counter()
    if now - t0 >= seconds: break
    if due > now: time.sleep(due - now)
    s.sendto(packets[n % len(packets)], ("127.0.0.1", port)); n += 1
print(n, time.process_time())
"""

MIDI_PORT = "midi-flood"  # the flood's JACK client: what a listener's --midi-in names

# MIDI CCs 1-8 (the default patch's knobs) at ``rate`` a second for ``seconds`` from a JACK port,
# sent once ``delay`` seconds have passed (the listener has connected by then). Prints how many.
MIDI_FLOOD = r"""
import signal, sys, time, rtmidi
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # terminated: its JACK client closed, not left behind
rate, seconds, delay = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="midi-flood")
out.open_virtual_port("out")
n = 0
try:
    time.sleep(delay)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        due = t0 + n / rate
        now = time.perf_counter()
        if due > now: time.sleep(due - now)
        out.send_message([0xB0, 1 + n % 8, (n * 7) % 128]); n += 1
finally:
    out.close_port(); out.delete()
    print(n)
"""

# What takes the floods when the instrument does not: a UDP socket on the OSC port and a JACK MIDI
# input connected to the MIDI flood, both read and thrown away, for ``seconds``.
STUB = r"""
import select, signal, socket, sys, time, rtmidi
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # terminated: its JACK client closed, not left behind
port, seconds, midi = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "1"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", port)); s.setblocking(False)
inp = None
if midi:
    inp = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="stub-in")
    end = time.monotonic() + 10
    while inp.get_port_count() == 0 or not any("midi-flood" in p for p in inp.get_ports()):
        if time.monotonic() > end: sys.exit("no midi-flood port to listen to")
        time.sleep(0.05)
    inp.open_port(next(i for i, p in enumerate(inp.get_ports()) if "midi-flood" in p))
got = 0; end = time.monotonic() + seconds
try:
    while time.monotonic() < end:
        select.select([s], [], [], 0.002)
        while True:
            try: s.recv(65536); got += 1
            except BlockingIOError: break
        while inp is not None and inp.get_message() is not None: got += 1
finally:
    if inp is not None: inp.close_port(); inp.delete()
    print(got)
"""


def _env(server: str | None) -> dict[str, str]:
    return dict(os.environ, **({"JACK_DEFAULT_SERVER": server} if server else {}))


def osc_flood(port: int, rate: float, seconds: float) -> subprocess.Popen:
    """The OSC flood (stdout: sent, CPU seconds)."""
    return subprocess.Popen([sys.executable, "-c", OSC_FLOOD, str(port), str(rate), str(seconds)],
                            stdout=subprocess.PIPE, text=True)


def midi_flood(server: str | None, rate: float, seconds: float, delay_s: float) -> subprocess.Popen:
    """The MIDI CC flood on ``server`` (stdout: sent), sending from ``delay_s`` after it starts."""
    return subprocess.Popen([sys.executable, "-c", MIDI_FLOOD, str(rate), str(seconds), str(delay_s)],
                            env=_env(server), stdout=subprocess.PIPE, text=True)


def stub_listener(server: str | None, osc_port: int, seconds: float, midi: bool) -> subprocess.Popen:
    """The stub that takes both floods for ``seconds`` (stdout: messages taken)."""
    return subprocess.Popen([sys.executable, "-c", STUB, str(osc_port), str(seconds), "1" if midi else "0"],
                            env=_env(server), stdout=subprocess.PIPE, text=True)
