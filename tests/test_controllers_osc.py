"""OSC control over real UDP on loopback: parameter addresses, /state, patch mappings, and a
flood of garbage that must not stop the server."""

from __future__ import annotations

import json
import random
import socket
import struct

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from controllers.router import Router
from controllers.osc import OscControl
from controllers.patch import parse_patch
from instrument.errors import UsageError
from instrument.live.params import Parameters
from bench.harness.wait import wait_for

PATCH = """
name: test
mappings:
  - source: {osc: /1/fader1}
    target: tempo
    range: [60, 180]
  - source: {osc: /xy, arg: 1}
    target: swing
    invert: true
actions:
  - source: {osc: /2/push1}
    fire: tune.new
"""


class Client:
    """A raw UDP socket: sends OSC or bytes and reads replies."""

    def __init__(self, port: int):
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(2.0)

    def send(self, address: str, *args) -> None:
        builder = OscMessageBuilder(address)
        for arg in args:
            builder.add_arg(arg)
        self.raw(builder.build().dgram)

    def raw(self, data: bytes) -> None:
        self.sock.sendto(data, ("127.0.0.1", self.port))

    def state(self) -> dict:
        """Ask /state and return the decoded snapshot (replies to earlier asks are skipped)."""
        self.send("/state")
        message = OscMessage(self.sock.recv(65536))
        assert message.address == "/state" and len(message.params) == 1
        return json.loads(message.params[0])

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def rig():
    params = Parameters()
    osc = OscControl(params, Router(params, parse_patch(PATCH)), port=0)
    client = Client(osc.port)
    yield params, osc, client
    client.close()
    osc.close()


def test_state_answers_with_one_json_message(rig):
    params, osc, client = rig
    state = client.state()
    assert state == json.loads(json.dumps(params.snapshot()))
    assert state["temperature"] == 1.0 and state["tune.new"] == 0


def test_parameter_addresses_apply(rig):
    params, osc, client = rig
    client.send("/temperature", 0.5)
    client.send("/stimulation/weight", 0.25)
    client.send("/ablation/depth", 1)  # an int for a float
    client.send("/bias/scale", "dorian")
    client.send("/hold", 1)
    client.send("/ablation/units", 3, 17, 40)
    client.send("/tune/new")
    client.send("/panic", 1.0)
    client.send("/panic", 0.0)  # a button's release: no second panic
    state = client.state()
    assert state["temperature"] == 0.5
    assert state["stimulation.weight"] == 0.25
    assert state["ablation.depth"] == 1.0
    assert state["bias.scale"] == "dorian"
    assert state["hold"] is True
    assert state["ablation.units"] == [3, 17, 40]
    assert state["tune.new"] == 1 and state["panic"] == 1
    assert params.source("temperature") == "OSC /temperature"
    assert osc.reporter.ignored == 0


def test_out_of_range_clamps_and_wrong_input_is_ignored(rig, caplog):
    params, osc, client = rig
    client.send("/temperature", 9.0)
    client.send("/tempo", "fast")  # wrong type
    client.send("/bias/scale", "klingon")  # unknown choice
    client.send("/no/such/thing", 1.0)
    client.send("/temperature")  # no value
    state = client.state()
    assert state["temperature"] == 4.0
    assert state["tempo"] == 110.0 and state["bias.scale"] == "none"
    assert osc.reporter.ignored == 4
    assert "clamped to 4.0" in caplog.text
    assert "unknown address /no/such/thing" in caplog.text


def test_patch_mappings_through_a_range_and_actions(rig):
    params, osc, client = rig
    client.send("/1/fader1", 0.5)
    client.send("/xy", 0.9, 0.25)  # arg 1 -> swing, inverted
    client.send("/2/push1", 1.0)
    client.send("/2/push1", 0.0)
    client.send("/2/push1", 1.0)
    state = client.state()
    assert state["tempo"] == pytest.approx(120.0)
    assert state["swing"] == pytest.approx(0.75)
    assert state["tune.new"] == 2


def test_a_flood_of_garbage_does_not_stop_the_server(rig, caplog):
    params, osc, client = rig
    rng = random.Random(1)
    good = OscMessageBuilder("/temperature")
    good.add_arg(0.7)
    good = good.build().dgram
    for i in range(3000):
        kind = i % 6
        if kind == 0:
            data = rng.randbytes(rng.randint(1, 200))
        elif kind == 1:
            data = good[: rng.randint(1, len(good) - 1)]  # truncated
        elif kind == 2:  # a type tag that lies about the arguments
            data = b"/temperature\x00\x00\x00\x00,fff\x00\x00\x00\x00" + struct.pack(">f", 0.1)
        elif kind == 3:  # unknown address
            data = OscMessageBuilder(f"/nothing/{rng.randint(0, 99)}").build().dgram
        elif kind == 4:  # wrong type for a known one
            b = OscMessageBuilder("/tempo")
            b.add_arg("x" * rng.randint(1, 30))
            data = b.build().dgram
        else:  # a bundle header with garbage in it
            data = b"#bundle\x00" + rng.randbytes(rng.randint(0, 40))
        client.raw(data)
        if i % 100 == 99:  # in bursts a UDP receive buffer holds: none lost, all counted
            wait_for(lambda: osc.reporter.received >= i + 1, 10, what=lambda: osc.reporter.received, step=0.002)
    assert osc.reporter.received == 3000
    client.send("/temperature", 0.3)
    wait_for(lambda: params.target("temperature") == pytest.approx(0.3), 10)
    assert client.state()["temperature"] == pytest.approx(0.3)
    assert osc.reporter.ignored >= 2400
    warnings = [r for r in caplog.records if r.name.startswith("controllers")]
    assert len(warnings) < 30, "the log must be rate-limited"
    assert "Traceback" not in caplog.text


def test_a_port_in_use_is_one_line(rig):
    params, osc, client = rig
    with pytest.raises(UsageError, match=rf"^--osc-port {osc.port}: cannot listen on 127.0.0.1:{osc.port}: in use"):
        OscControl(params, osc.router, port=osc.port)


def test_a_fader_flooding_at_2000_a_second_reaches_the_parameter_once_a_batch_and_ends_at_its_last_value(rig):
    """A value replaced within a batch by a later one from the same address never reaches the
    parameters (counted as superseded); presses of an action and /state are each taken in order."""
    params, osc, client = rig
    moves: list[float] = []
    params.listen(lambda change: moves.append(change.value), "temperature")
    for i in range(2000):  # as fast as a socket sends: many per batch
        client.send("/temperature", 0.5 + i / 4000)
        if i % 200 == 199:  # in bursts a UDP receive buffer holds: none lost
            assert wait_for(lambda: osc.reporter.received >= i + 1, timeout=3, step=0.002), osc.reporter.received
    client.send("/2/push1", 1.0)
    client.send("/2/push1", 0.0)
    client.send("/2/push1", 1.0)
    state = client.state()
    assert state["temperature"] == pytest.approx(0.5 + 1999 / 4000)  # /state sees the last value before it
    assert state["tune.new"] == 2  # every press of an action counts
    assert osc.reporter.received == 2000 + 3 + 1 and osc.reporter.ignored == 0
    assert len(moves) + osc.reporter.superseded == 2000, (len(moves), osc.reporter.superseded)
    assert len(moves) < 1000, "the flood was applied message by message"
    assert "superseded" in osc.status()


def test_a_bad_value_never_replaces_a_good_one_from_the_same_address(rig):
    params, osc, client = rig
    for _ in range(50):  # in one batch or several: the good value stands, the bad ones are counted
        client.send("/tempo", 150.0)
        client.send("/tempo", "fast")
    assert client.state()["tempo"] == 150.0
    assert osc.reporter.ignored == 50
