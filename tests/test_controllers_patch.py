"""Patches: mistakes reported at their line, the shipped patches valid, the mapping layer's
arithmetic, and hot reload through a running rig (real files, real UDP)."""

from __future__ import annotations

import argparse
import socket

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder

from controllers.mapping import Mapping, curve
from controllers.router import Router
from controllers.patch import PatchError, load_patch, parse_patch
from controllers.report import Reporter
from controllers.rig import Controllers, add_controller_arguments
from instrument.errors import UsageError
from instrument.live.params import Parameters
from tests.helpers import ROOT, run_cli
from bench.harness.wait import wait_for

GOOD = """\
name: good
start:
  temperature: 0.8
mappings:
  - source: {osc: /1/fader1}
    target: tempo
    range: [60, 180]
"""

# (patch text, line of the mistake, words the message must contain)
BROKEN = [
    ("name: x\nstart:\n  temperature: 9\n", 3, ["start.temperature", "outside"]),
    ("name: x\nstart:\n  temprature: 1\n", 3, ["start", "unknown parameter", "temperature"]),
    ("name: x\nmappings:\n  - source: {midi: {cc: 7}}\n    target: tempo\n    range: [0, 1000]\n", 5,
     ["mappings[0].range", "outside tempo's range"]),
    ("name: x\nmappings:\n  - source: {midi: {cc: 7}}\n    target: tempo\n    colour: red\n", 5,
     ["mappings[0]", "unknown field", "range, curve"]),
    ("name: x\nmappings:\n  - source: {midi: {cc: 7}}\n    target: tempo\n    curve: cubic\n", 5,
     ["mappings[0].curve", "not one of: linear"]),
    ("name: x\nmappings:\n  - source: {midi: {cc: 7}}\n    target: tempo\n    invert: 3\n", 5,
     ["mappings[0].invert", "true or false"]),
    ("name: x\nmappings:\n  - target: tempo\n", 3, ["mappings[0]", "source is missing"]),
    ("name: x\nmappings:\n  - source: {myo: fist}\n    target: tempo\n", 3, ["mappings[0].source.myo", "poses go in actions"]),
    ("name: x\nactions:\n  - source: {myo: fist}\n    fire: hold\n", 4, ["actions[0].fire", "bool"]),
    ("name: x\nactions:\n\n  - source: {myo: waveIn}\n    step: ablation.depth\n    by: zero\n", 6,
     ["actions[0].by", "a number"]),
    ("name: x\nkeys: {weight: 2}\n", 2, ["keys.weight", "outside 0..1"]),
    ("name: x\nprograms:\n  3: missing.yaml\n", 3, ["programs.3", "no patch file"]),
    ("name: x\nmappings:\n  - source: {osc: /a\n", 4, ["YAML syntax"]),
    ("name: x\nbogus: 1\n", 2, ["patch", "unknown field"]),
    ("name: x\nprograms:\n  1: /etc/passwd\n", 3, ["programs.1", "'/etc/passwd' is not a patch file", ".yaml"]),
]


@pytest.mark.parametrize("text,line,words", BROKEN)
def test_mistakes_name_file_line_and_field(tmp_path, text, line, words):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(PatchError) as caught:
        load_patch(path)
    first = caught.value.errors[0]
    assert first.startswith(f"{path}:{line}: "), first
    for word in words:
        assert word in first, first


def test_all_mistakes_of_a_file_are_listed():
    text = "name: x\nstart:\n  temperature: 9\nmappings:\n  - source: {midi: {cc: 300}}\n    target: nothing\n"
    with pytest.raises(PatchError) as caught:
        parse_patch(text, "p.yaml")
    lines = [e.split(":")[1] for e in caught.value.errors]
    assert lines == ["3", "5", "6"], caught.value.errors
    assert "and 2 more" in str(caught.value)


def test_patch_check_command(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nmappings:\n  - source: {midi: {cc: 1}}\n    target: temperature\n    range: [0, 9]\n")
    result = run_cli("patch", "check", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"{bad}:5: mappings[0].range:")
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_every_shipped_patch_passes_check():
    patches = sorted(str(p) for p in (ROOT / "patches").glob("*.yaml"))
    assert len(patches) >= 3
    result = run_cli("patch", "check", *patches)
    assert result.returncode == 0, result.stderr
    for patch in patches:
        assert f"{patch}: ok (" in result.stdout


def test_curves_ranges_invert_and_input():
    params = Parameters()
    spec = params.specs["tempo"]
    m = Mapping(("cc", None, 1), "tempo", 60.0, 180.0)
    assert [m.value(x, spec) for x in (0, 0.5, 1, -3, 7)] == [60, 120, 180, 60, 180]
    assert Mapping(("cc", None, 1), "tempo", 60.0, 180.0, invert=True).value(0.25, spec) == pytest.approx(150)
    assert Mapping(("cc", None, 1), "tempo", 60.0, 180.0, input_lo=0.2, input_hi=0.6).value(0.4, spec) == pytest.approx(120)
    for shape in ("linear", "exponential", "logarithmic"):
        assert curve(0.0, shape) == 0.0 and curve(1.0, shape) == pytest.approx(1.0)
    assert curve(0.5, "exponential") < 0.5 < curve(0.5, "logarithmic")
    assert curve(curve(0.3, "exponential"), "logarithmic") == pytest.approx(0.3)
    choice = params.specs["bias.scale"]
    assert Mapping(("cc", None, 1), "bias.scale", 0.0, 9.0).value(1.0, choice) == 9
    assert Mapping(("cc", None, 1), "hold", 0.0, 1.0).value(0.7, params.specs["hold"]) is True


def test_actions_and_pickup_takeover():
    params = Parameters()
    patch = parse_patch("""
name: t
mappings:
  - source: {myo: pitch}
    target: ablation.depth
    takeover: pickup
actions:
  - source: {myo: waveOut}
    step: ablation.depth
    by: 0.3
  - source: {myo: fist}
    toggle: hold
  - source: {midi: {cc: 64}}
    fire: tune.new
""")
    router, reporter = Router(params, patch), Reporter("test")
    router.route(("pose", "fist"), None, "t", reporter)
    assert params.target("hold") is True
    router.route(("myo", "pitch"), 0.2, "t", reporter)
    assert params.target("ablation.depth") == pytest.approx(0.2)
    router.route(("pose", "waveOut"), None, "t", reporter)
    assert params.target("ablation.depth") == pytest.approx(0.5)
    router.route(("myo", "pitch"), 0.25, "t", reporter)  # the arm has not reached 0.5: no jump back
    assert params.target("ablation.depth") == pytest.approx(0.5)
    router.route(("myo", "pitch"), 0.6, "t", reporter)  # crossed it: the arm has it again
    assert params.target("ablation.depth") == pytest.approx(0.6)
    for _ in range(3):
        router.route(("pose", "waveOut"), None, "t", reporter)
    assert params.target("ablation.depth") == 1.0  # stepped, kept in range
    for value in (0.2, 0.9, 1.0, 0.1, 0.8):  # a level source presses when it rises through 0.5
        router.route(("cc", 3, 64), value, "t", reporter)
    assert params.fired("tune.new") == 2
    assert reporter.ignored == 0
    assert [a.describe() for a in patch.actions[("cc", None, 64)]] == ["CC 64 -> fire tune.new"]
    for name in ("default", "myo-lobotomy", "phone-touchosc"):  # every action of the shipped patches reads
        shipped = load_patch(ROOT / "patches" / f"{name}.yaml")
        assert all(a.describe() for actions in shipped.actions.values() for a in actions)


def _controllers(params: Parameters, *argv: str) -> Controllers:
    parser = argparse.ArgumentParser()
    add_controller_arguments(parser)
    return Controllers.open(params, parser.parse_args(list(argv)))


def test_rig_open_reports_a_bad_patch_in_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nstart:\n  tempo: fast\n")
    with pytest.raises(UsageError, match=rf"^{bad}:3: start.tempo: "):
        _controllers(Parameters(), "--patch", str(bad), "--no-osc", "--no-myo", "--midi-in", "none")


def test_hot_reload_applies_a_valid_save_and_keeps_the_old_mapping_on_a_bad_one(tmp_path):
    path = tmp_path / "live.yaml"
    path.write_text(GOOD)
    params = Parameters()
    rig = _controllers(params, "--patch", str(path), "--osc-port", "0", "--no-myo", "--midi-in", "none")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert params.target("temperature") == 0.8  # the patch's start state
        fader = OscMessageBuilder("/1/fader1")
        fader.add_arg(0.5)
        fader = fader.build().dgram

        def move() -> None:
            params.set("tempo", 100.0)
            sock.sendto(fader, ("127.0.0.1", rig.osc.port))

        move()
        wait_for(lambda: params.target("tempo") == pytest.approx(120.0), 10)
        path.write_text(GOOD.replace("[60, 180]", "[100, 200]"))
        wait_for(lambda: rig.watcher.reloads == 1, 10)
        move()
        wait_for(lambda: params.target("tempo") == pytest.approx(150.0), 10)
        path.write_text(GOOD.replace("[60, 180]", "[100, 2000]"))
        wait_for(lambda: rig.watcher.rejected == 1, 10)
        move()
        wait_for(lambda: params.target("tempo") == pytest.approx(150.0), 10)
        status = rig.status()
        assert any("NOT loaded" in line and "live.yaml:7" in line for line in status)
        assert status[1].startswith("OSC 127.0.0.1:") and status[2] == "MIDI in: off (--midi-in none)"
        assert len(status) == 3, status
        assert rig.watcher.reloads == 1
    finally:
        sock.close()
        rig.close()
        rig.close()  # idempotent


def test_a_flood_of_warnings_is_rate_limited_and_what_was_left_out_is_counted(caplog):
    """One rate limit (live/logs.py's Burst) for the log and for each controller: a burst passes,
    the rest of the window is held back, and the next window says how many were left out."""
    import logging

    from instrument.live.logs import RateLimit

    now = [0.0]
    reporter = Reporter("test", burst=3, interval_s=10.0, clock=lambda: now[0])
    caplog.set_level(logging.WARNING)
    for i in range(8):
        reporter.ignore(f"bad {i}")
    assert [r.getMessage() for r in caplog.records] == ["test: bad 0", "test: bad 1", "test: bad 2"]
    assert reporter.ignored == 8
    now[0] = 10.0
    reporter.ignore("bad 8")
    assert [r.getMessage() for r in caplog.records][3:] == ["test: 5 more warnings left out of the log", "test: bad 8"]

    limit = RateLimit(period=3600.0, burst=2)
    records = [logging.LogRecord("x", logging.WARNING, "", 0, "same message", (), None) for _ in range(5)]
    assert [limit.filter(r) for r in records] == [True, True, False, False, False]


def test_the_session_patch_puts_the_listening_on_pedals_and_its_start_on_answer_with_a_click():
    params = Parameters()
    patch = load_patch(ROOT / "patches" / "session.yaml")
    patch.apply_start(params)
    assert params.get("listen") == "answer" and params.get("listen.click") is True
    router, reporter = Router(params, patch), Reporter("test")
    for cc, mode in ((67, "along"), (65, "continue"), (68, "off"), (66, "answer")):
        router.route(("cc", 1, cc), 1.0, "t", reporter)
        router.route(("cc", 1, cc), 0.0, "t", reporter)
        assert params.target("listen") == mode
    ends = params.fired("listen.end")
    router.route(("cc", 1, 64), 1.0, "t", reporter)
    assert params.fired("listen.end") == ends + 1
    router.route(("cc", 1, 1), 0.25, "t", reporter)
    assert params.target("listen.cohesion") == pytest.approx(0.25)
    assert reporter.ignored == 0
