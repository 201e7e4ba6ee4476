"""A performance in a Link session, run inside a loopback-only network namespace (``python -m
tests.link_scenario OUT.json``, started by ``tests/test_link.py`` under ``unshare -n``): a test
peer at 132 BPM, the instrument joining it with ``--sync link``, an independent JACK listener,
then the peer's tempo change, our ``/tempo`` sent over OSC, and the peer's Stop and Start.

It measures and writes what it saw as JSON; the test judges it. Nothing here leaves the machine:
it refuses to run where any interface but loopback exists.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import mido

from bench.harness.jack_server import start_jack
from bench.harness.link import LinkPeer, assert_loopback_only
from bench.harness.midi import Receiver
from bench.harness.net import free_udp_port
from bench.harness.osc import ask_state, osc_message
from bench.harness.wait import wait_for
from instrument.midi.messages import CONTROL, NOTE_OFF, NOTE_ON
from instrument.midi import ports
from instrument.timing import clock
from tests.timing import machine_jitter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(out_path: str, seconds: float = 120.0) -> int:
    assert_loopback_only()
    server = f"link-scenario-{os.getpid()}"
    jack = start_jack(server)
    os.environ["JACK_DEFAULT_SERVER"] = server
    peer = LinkPeer(132.0, quantum=4.0, start_stop=True)
    osc = free_udp_port()
    take = os.path.join(os.path.dirname(os.path.abspath(out_path)), "link-take.mid")
    receiver = Receiver("link-listener", "in")
    proc = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "run.py"), "play", "--quiet", "--no-web", "--no-myo", "--midi-in", "none",
         "--sync", "link", "--link-start-stop", "--meter", "4/4", "--tempo", "100", "--midi-out", "virtual",
         "--midi-api", "jack", "--no-audio", "--osc-port", str(osc), "--seed", "3", "--seconds", str(seconds),
         "--record", take, "--set", "swing=0"],
        cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    result: dict = {"events": {}}
    measuring = machine_jitter()  # the machine's own stalls over the run: what a note's timing is judged against
    jitter = measuring.__enter__()
    try:
        def answered():
            assert proc.poll() is None, proc.stderr.read()
            return (ask_state(sock, osc, timeout=0.3) or {}).get("status")

        status = wait_for(answered, 90, "play to answer /state")
        receiver.listen_to(f"{ports.PRODUCT}:")
        wait_for(lambda: peer.link.num_peers > 0, 10, "the peer to see the instrument join")
        joined = result["events"]["joined"] = clock()

        def tempo_is(bpm):
            state = ask_state(sock, osc, timeout=0.3) or {}
            return abs(float(state.get("tempo", 0)) - bpm) < 0.01

        wait_for(lambda: tempo_is(132.0), 10, "the instrument to take the session's tempo")
        result["tempo_taken_s"] = clock() - joined
        result["first_status"] = status
        result["waiting_status"] = (ask_state(sock, osc, timeout=0.5) or {}).get("status", {}).get("sync")
        result["events"]["start_1"] = clock()
        peer.link.playing = True  # the performer presses play in the peer

        time.sleep(8.0)  # a stretch at 132 BPM, measured
        result["events"]["tempo_100"] = clock()
        peer.link.tempo = 100.0
        time.sleep(5.0)  # a stretch at 100 BPM, measured

        result["events"]["osc_140"] = sent = clock()
        sock.sendto(osc_message("/tempo", 140.0), ("127.0.0.1", osc))
        wait_for(lambda: abs(peer.link.tempo - 140.0) < 0.01, 5, "the peer to see 140")
        result["peer_saw_140_s"] = clock() - sent
        time.sleep(3.0)

        result["events"]["stop"] = clock()
        peer.link.playing = False
        time.sleep(1.5)  # the silence measured
        state = ask_state(sock, osc, timeout=0.5) or {}
        result["stopped_status"] = state.get("status", {}).get("sync")
        result["events"]["start_2"] = clock()
        peer.link.playing = True
        time.sleep(4.0)  # the Start's first bars, measured
        result["events"]["sync_off"] = sent = clock()
        sock.sendto(osc_message("/sync", "off"), ("127.0.0.1", osc))  # the performer leaves the session live
        wait_for(lambda: peer.link.num_peers == 0, 10, "the instrument to leave the session")
        result["left_s"] = clock() - sent
        time.sleep(2.0)  # it plays on, free
        proc.terminate()  # a performer's SIGTERM: the music stops with nothing left sounding
        _, err = proc.communicate(timeout=30)
        result["returncode"] = proc.returncode
        result["stderr"] = err[-3000:]
    finally:
        measuring.__exit__(None, None, None)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        time.sleep(0.2)  # the last note-offs reach the listener
        messages = receiver.messages
        receiver.close()
        peer_readings = list(peer.readings)
        peer.close()
        sock.close()
        jack.terminate()
        jack.wait(10)
    result["midi"] = [(t, m[0] & 0xF0, m[1], m[2]) for t, m in messages if m[0] & 0xF0 in (NOTE_ON, NOTE_OFF, CONTROL)]
    result["peer"] = [(r.time, r.beat, r.tempo) for r in peer_readings]
    result["take"] = _take_notes(take)
    result["jitter"] = {"due": list(jitter.due), "late": list(jitter.late)}
    with open(out_path, "w") as f:
        json.dump(result, f)
    return 0


def _take_notes(path: str) -> list[tuple[int, bool]]:
    """The take's note-ons in order: (pitch, whether a tune's marker comes just before it)."""
    if not os.path.exists(path):
        return []
    notes, marked = [], False
    for message in mido.merge_tracks(mido.MidiFile(path).tracks):
        if message.type == "marker":
            marked = True
        elif message.type == "note_on" and message.velocity > 0:
            notes.append((message.note, marked))
            marked = False
    return notes


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
