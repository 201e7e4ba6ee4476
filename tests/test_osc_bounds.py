"""OSC as a stranger on the network would use it, over real UDP: the OSC thread never opens a
file whatever a message names, long inputs give one short line, /state is no reflection
amplifier for senders on other machines, and lists and bundles up to 64 KiB arrive whole."""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading

import pytest
from pythonosc.osc_message import OscMessage

from controllers.router import Router
from controllers.osc import STATE_BURST, OscControl
from controllers.patch import parse_patch
from instrument.live.model_checks import fit_to_model
from instrument.live.params import Parameters
from instrument.model import checkpoint
from bench.harness.midi import wait_for
from bench.harness.osc import bundle, osc_message

_opened: list[str] = []  # files opened on an OSC server thread, while a test watches


def _audit(event: str, args: tuple) -> None:
    if event == "open" and threading.current_thread().name.startswith("osc-server"):
        _opened.append(str(args[0]))


sys.addaudithook(_audit)  # audit hooks cannot be removed: this one only looks at OSC threads


@pytest.fixture
def rig():
    """An OSC port on all interfaces, its parameters fitted to the shipped model (512 units,
    its installed ablation sets), as ``play --osc-host 0.0.0.0`` opens it."""
    params = Parameters()
    fit_to_model(params, 512, 3, str(checkpoint.resolve(None)))
    osc = OscControl(params, Router(params, parse_patch("name: t\n")), host="0.0.0.0", port=0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(1.0)
    _opened.clear()
    yield params, osc, sock
    sock.close()
    osc.close()


def state(sock, port: int) -> dict:
    sock.sendto(osc_message("/state"), ("127.0.0.1", port))
    reply = OscMessage(sock.recv(65536))
    return json.loads(reply.params[0])


def test_an_ablation_set_named_over_osc_opens_no_file(rig, tmp_path):
    params, osc, sock = rig
    big = tmp_path / "big.json"
    big.write_text("[" + "1, " * 5_000_000 + "1]")
    for name in (str(big), "/etc/passwd", "../../etc/hostname.json", "periodic-5pct"):
        sock.sendto(osc_message("/ablation/set", name), ("127.0.0.1", osc.port))
    assert state(sock, osc.port)["ablation.set"] == "periodic-5pct"  # an installed set: by name, from memory
    assert _opened == []
    assert osc.reporter.ignored == 3


def test_long_inputs_give_one_short_line_and_no_traceback(rig, caplog):
    params, osc, sock = rig
    with caplog.at_level(logging.WARNING):
        sock.sendto(osc_message("/ablation/set", "x" * 5000), ("127.0.0.1", osc.port))
        sock.sendto(osc_message("/stimulation/token", "y" * 5000), ("127.0.0.1", osc.port))
        sock.sendto(osc_message("/" + "z" * 5000, 1.0), ("127.0.0.1", osc.port))
        assert wait_for(lambda: osc.reporter.ignored == 3, timeout=3)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 and all(len(line) < 400 and "\n" not in line for line in lines), lines
    assert not any(r.exc_info for r in caplog.records)


def test_a_unit_the_layer_lacks_is_refused_in_one_line(rig, caplog):
    params, osc, sock = rig
    with caplog.at_level(logging.WARNING):
        sock.sendto(osc_message("/ablation/units", 3, 600), ("127.0.0.1", osc.port))
        assert wait_for(lambda: osc.reporter.ignored == 1, timeout=3)
    assert state(sock, osc.port)["ablation.units"] == []
    assert "0..511, not 600" in caplog.records[-1].getMessage()


def test_a_list_of_12000_numbers_arrives_whole(rig):
    params, osc, sock = rig
    units = [u % 512 for u in range(12_000)]
    data = osc_message("/ablation/units", *units)
    assert 48_000 < len(data) < 65_000
    sock.sendto(data, ("127.0.0.1", osc.port))
    assert state(sock, osc.port)["ablation.units"] == list(range(512))
    assert osc.reporter.ignored == 0


def test_a_60_kib_bundle_arrives_whole(rig):
    params, osc, sock = rig
    parts = [osc_message("/temperature", 0.5 + i / 10_000) for i in range(2_000)]
    data = bundle(*parts)
    assert 55_000 < len(data) < 65_000
    before = osc.reporter.received
    sock.sendto(data, ("127.0.0.1", osc.port))
    assert wait_for(lambda: osc.reporter.received - before == 2_000, timeout=3)
    assert state(sock, osc.port)["temperature"] == pytest.approx(0.5 + 1999 / 10_000)
    assert osc.reporter.ignored == 0


def _address_off_loopback() -> str | None:
    """An address of this machine that is not loopback (a sender on the network), if it has one."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


def test_state_answers_this_machine_always_and_others_a_few_times_a_second(rig):
    params, osc, sock = rig
    address = _address_off_loopback()
    if address is None:
        pytest.skip("this machine has no address off loopback")
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind((address, 0))
    stranger.settimeout(0.3)
    try:
        request = osc_message("/state")
        for _ in range(20):
            stranger.sendto(request, (address, osc.port))
        answered = 0
        try:
            while True:
                reply = stranger.recv(65536)
                answered += 1
                assert len(reply) < 4096
        except socket.timeout:
            pass
        assert 1 <= answered <= STATE_BURST + 1  # a few, then the budget is spent
        for _ in range(20):  # this machine is never limited
            assert state(sock, osc.port)["temperature"] == 1.0
    finally:
        stranger.close()
