"""Ensembles: the shipped ones, mistakes in an ensemble file at their line, every voice's own
parameters (``voice.N.X``) by every route, the lead's unnumbered names unchanged."""

from __future__ import annotations

import argparse

import pytest

from controllers.patch import PatchError, ensemble_table, find_ensemble, load_patch, parse_patch
from controllers.rig import Controllers, add_controller_arguments
from instrument.cli.options import ensemble_params
from instrument.errors import UsageError
from instrument.live.ensemble import SOLO
from instrument.live.params import INSTRUMENT_PARAMS, ParamError, Parameters
from patches import DEFAULT as DEFAULT_PATCH, ENSEMBLES
from tests.helpers import ROOT, run_cli
from bench.harness.wait import wait_for


def test_the_shipped_ensembles_are_the_issue_s_voices():
    roles = {name: [(v.role, v.timbre, v.channel) for v in find_ensemble(name).voices] for name in ("solo", "duo", "trio", "pipes")}
    assert roles["solo"] == [("lead", None, 1)]
    assert roles["duo"] == [("lead", "fiddle", 1), ("follow", "flute", 2)]
    assert roles["trio"] == roles["duo"] + [("chords", "guitar", 3)]
    assert roles["pipes"] == [("lead", "uilleann-pipes", 1), ("drone", "uilleann-pipes", 2)]
    assert find_ensemble("solo").voices == SOLO.voices
    table = ensemble_table()
    assert [line.split()[0] for line in table.splitlines()[:4]] == ["solo", "duo", "trio", "pipes"]


BROKEN = [
    ("ensemble:\n  - role: follow\n", 2, ["ensemble[1].role", "the first voice is the lead"]),
    ("ensemble:\n  - role: lead\n  - role: lead\n", 3, ["ensemble[2].role", "only the first"]),
    ("ensemble:\n  - role: lead\n  - role: bass\n", 3, ["ensemble[2].role", "not one of: lead, follow, chords, drone"]),
    ("ensemble:\n  - role: lead\n  - role: follow\n    timbre: kazoo\n", 4, ["ensemble[2].timbre", "an unknown timbre; choose one of fiddle"]),
    ("ensemble:\n  - role: lead\n  - role: follow\n    channel: 10\n", 4, ["ensemble[2].channel", "drums"]),
    ("ensemble:\n  - role: lead\n    channel: 2\n  - role: follow\n    channel: 2\n", 5, ["ensemble[2].channel", "voice 1 plays on that channel"]),
    ("ensemble:\n  - role: lead\n  - role: chords\n    pan: 3\n", 4, ["ensemble[2].pan", "outside -1..1"]),
    ("ensemble:\n  - role: lead\n  - role: drone\n    start: {cohesion: 1}\n", 4, ["ensemble[2].start", "not a parameter of a drone"]),
    ("ensemble:\n  - role: lead\n  - role: follow\n    start: {cohesion: 2}\n", 4, ["ensemble[2].start.cohesion", "outside the range of voice.2.cohesion"]),
    ("ensemble:\n  - role: lead\n  - role: follow\n    colour: red\n", 4, ["ensemble[2]", "an unknown field"]),
    ("name: x\n", 1, ["ensemble", "missing"]),
    ("ensemble: []\n", 1, ["ensemble", "no voices"]),
    ("ensemble:\n" + "  - role: lead\n" + "  - role: follow\n" * 8, 10, ["at most 8"]),
]


@pytest.mark.parametrize("text,line,words", BROKEN)
def test_a_mistake_in_an_ensemble_file_names_its_file_line_and_field(tmp_path, text, line, words):
    path = tmp_path / "band.yaml"
    path.write_text(text)
    with pytest.raises(PatchError) as caught:
        find_ensemble(str(path))
    first = caught.value.errors[0]
    assert first.startswith(f"{path}:{line}: "), first
    for word in words:
        assert word in first, first


def test_channels_not_given_are_the_next_free_ones_and_a_repeated_role_is_numbered(tmp_path):
    path = tmp_path / "band.yaml"
    path.write_text("ensemble:\n  - role: lead\n  - {role: follow, channel: 3}\n  - role: follow\n  - role: drone\n")
    ensemble = find_ensemble(str(path))
    assert [(v.channel, v.name) for v in ensemble.voices] == [(1, "lead"), (3, "follow 2"), (2, "follow 3"), (4, "drone")]


def test_every_voice_has_its_own_parameters_and_the_lead_keeps_its_names():
    params = ensemble_params(INSTRUMENT_PARAMS, find_ensemble("trio"))
    assert params.get("voice.2.cohesion") == 0.6 and params.source("voice.2.cohesion") == "ensemble trio"
    assert params.get("timbre") == "fiddle" and params.get("voice.2.timbre") == "flute" and params.get("voice.3.timbre") == "guitar"
    assert "voice.3.temperature" not in params.specs  # chords are not a network row
    assert {"voice.3.velocity", "voice.3.mute", "voice.3.pan", "voice.3.timbre"} <= set(params.specs)
    params.set("voice.2.temperature", 1.6, source="test")
    assert params.target("voice.2.temperature") == 1.6 and params.target("temperature") == 1.0  # only voice 2
    params.set("voice.1.temperature", 0.5, smoothing_ms=0)  # the lead's own name, by its number
    assert params.get("temperature") == 0.5 and params.get("voice.1.temperature") == 0.5
    assert "voice.1.temperature" not in params.specs  # one spec, one value
    with pytest.raises(ParamError, match="voice.2.temperature=9.*outside"):
        params.set("voice.2.temperature", 9, clamp=False)
    with pytest.raises(ParamError, match="voice.5.temperature.*voices 2..3"):
        params.set("voice.5.temperature", 1.0)
    assert params.target("voice.2.temperature") == 1.6


def test_a_solo_has_the_lead_s_pan_and_mute_and_no_other_voice():
    params = Parameters()
    assert params.get("voice.1.mute") is False and params.get("voice.1.pan") == 0.0
    with pytest.raises(ParamError, match="only the lead"):
        params.set("voice.2.temperature", 1.0)


def test_a_patch_maps_a_voice_s_parameter_and_every_existing_patch_loads_unchanged(tmp_path):
    params = ensemble_params(INSTRUMENT_PARAMS, find_ensemble("duo"))
    text = ("name: band\nmappings:\n  - source: {osc: /fader/1}\n    target: voice.2.ablation.depth\n"
            "  - source: {osc: /fader/2}\n    target: voice.1.temperature\n")
    patch = parse_patch(text, "band.yaml", params.specs.values())
    targets = sorted(m.target for mappings in patch.mappings.values() for m in mappings)
    assert targets == ["temperature", "voice.2.ablation.depth"]
    with pytest.raises(PatchError, match="band.yaml:4: mappings\\[0\\].target: an unknown parameter"):
        parse_patch(text, "band.yaml", Parameters().specs.values())  # a solo has no voice 2
    for shipped in sorted((ROOT / "patches").glob("*.yaml")):
        load_patch(shipped, params.specs.values())


def test_a_patch_s_own_ensemble_plays_unless_the_command_line_names_another(tmp_path):
    patch = tmp_path / "band.yaml"
    patch.write_text("name: band\nensemble:\n  - role: lead\n  - {role: follow, timbre: flute}\n"
                     "mappings:\n  - source: {osc: /f}\n    target: voice.2.cohesion\n")
    from instrument.cli.options import choose_ensemble

    assert [v.role for v in choose_ensemble(argparse.Namespace(ensemble=None), patch).voices] == ["lead", "follow"]
    assert [v.role for v in choose_ensemble(argparse.Namespace(ensemble="pipes"), patch).voices] == ["lead", "drone"]
    assert choose_ensemble(argparse.Namespace(ensemble=None), DEFAULT_PATCH) is SOLO
    result = run_cli("patch", "check", str(patch))  # its mappings may steer its own voices
    assert result.returncode == 0, result.stderr


def test_osc_and_a_running_rig_move_one_voice_by_its_number(tmp_path):
    import socket

    from pythonosc.osc_message_builder import OscMessageBuilder

    params = ensemble_params(INSTRUMENT_PARAMS, find_ensemble("trio"))
    parser = argparse.ArgumentParser()
    add_controller_arguments(parser)
    args = parser.parse_args(["--osc-port", "0", "--no-myo", "--midi-in", "none", "--patch", str(DEFAULT_PATCH)])
    rig = Controllers.open(params, args)
    try:
        port = rig.osc.port
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for address, value in (("/voice/2/temperature", 1.6), ("/voice/3/mute", 1), ("/voice/1/ablation/depth", 0.25)):
            message = OscMessageBuilder(address)
            message.add_arg(value)
            sock.sendto(message.build().dgram, ("127.0.0.1", port))
        wait_for(lambda: params.get("ablation.depth") == 0.25, 10, "the last message handled")
        sock.close()
    finally:
        rig.close()
    assert params.target("voice.2.temperature") == pytest.approx(1.6) and params.target("temperature") == 1.0  # OSC's float32
    assert params.get("voice.3.mute") is True and params.get("voice.1.mute") is False
    assert params.get("ablation.depth") == 0.25 and params.get("voice.2.ablation.depth") == 0.0


@pytest.mark.parametrize("args, words", [
    (("--ensemble", "quartet"), "no such ensemble; choose solo, duo, trio, pipes"),
    (("--ensemble", "duo", "--set", "voice.3.cohesion=1"), "voices 2..2"),
    (("--ensemble", "duo", "--set", "voice.2.cohesion=2"), "voice.2.cohesion=2 is outside"),
])
def test_a_wrong_ensemble_or_voice_is_one_line_with_exit_code_2(tmp_path, small_checkpoint, args, words):
    result = run_cli("render", "--model", str(small_checkpoint), "--bars", "1", "--out", str(tmp_path / "x.wav"), *args)
    lines = [line for line in result.stderr.strip().splitlines() if line]
    assert result.returncode == 2 and len(lines) == 1 and words in lines[0] and "Traceback" not in result.stderr, result.stderr


def test_a_broken_ensemble_file_stops_play_and_render_in_one_line(tmp_path, small_checkpoint):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ensemble:\n  - role: lead\n  - role: follow\n    timbre: kazoo\n")
    for command in (("render", "--out", str(tmp_path / "x.wav"), "--bars", "1"),
                    ("play", "--quiet", "--no-osc", "--no-myo", "--midi-in", "none", "--midi-out", "none", "--no-audio", "--bars", "1")):
        result = run_cli(*command, "--model", str(small_checkpoint), "--ensemble", str(bad))
        lines = [line for line in result.stderr.strip().splitlines() if line]
        assert result.returncode == 2 and len(lines) == 1 and f"{bad}:4: ensemble[2].timbre: an unknown timbre" in lines[0], result.stderr


def test_ensemble_list_prints_the_shipped_ones():
    result = run_cli("render", "--ensemble", "list", "--out", "x.wav")
    assert result.returncode == 0
    assert "trio" in result.stdout and "guitar" in result.stdout and "pipes" in result.stdout


def test_the_shipped_ensemble_files_are_package_data():
    assert sorted(p.stem for p in ENSEMBLES.glob("*.yaml")) == ["duo", "pipes", "solo", "trio"]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"ensembles/*.yaml"' in pyproject


def test_a_usage_error_is_a_usage_error():
    with pytest.raises(UsageError):
        find_ensemble("no-such-band")
