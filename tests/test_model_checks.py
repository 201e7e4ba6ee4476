"""Live parameters checked against the model they act on, and a model thread that survives what
gets past the checks: a unit the layer lacks is refused where it is set (Parameters.set, patch
check, OSC), and a fault while composing skips a note instead of ending the performance."""

from __future__ import annotations

import json
import logging

import pytest

from controllers.patch import PatchError, parse_patch
from instrument.live.engine import Limits
from instrument.live.model_checks import fit_to_model, fitted_specs
from instrument.live.params import INSTRUMENT_PARAMS, ParamError, Parameters
from instrument.timing import clock
from tests.engine_helpers import engine_for
from tests.helpers import run_cli


def fitted(tmp_path, hidden=32, layers=3, sets=("periodic",)) -> Parameters:
    model_path = tmp_path / "m.pt"
    folder = model_path.with_suffix(".ablation")
    folder.mkdir(exist_ok=True)
    for name in sets:
        (folder / f"{name}-layer{layers}.json").write_text(json.dumps({"layer": layers, "units": [0, 1]}))
    params = Parameters()
    fit_to_model(params, hidden, layers, str(model_path))
    return params


def test_parameters_set_refuses_a_unit_the_layer_lacks_and_keeps_the_old_value(tmp_path):
    params = fitted(tmp_path, hidden=32)
    params.set("ablation.units", [3, 31, 3])
    assert params.target("ablation.units") == (3, 31)  # each unit once
    for bad in ([3, 32], [600], [-1], [float("inf")], ["x"]):
        with pytest.raises(ParamError) as caught:
            params.set("ablation.units", bad)
        assert len(str(caught.value)) < 200 and "\n" not in str(caught.value)
    assert params.target("ablation.units") == (3, 31)
    assert "0..31" in str(pytest.raises(ParamError, params.set, "ablation.units", [600]).value)


def test_an_unfitted_registry_takes_any_unit_which_is_why_the_fit_exists():
    params = Parameters()
    params.set("ablation.units", [600])  # the model is not known here: nothing can refuse it
    assert params.target("ablation.units") == (600,)


def test_set_names_and_layers_are_the_models_own(tmp_path):
    params = fitted(tmp_path, layers=2, sets=("periodic", "periodic-5pct"))
    assert params.target("ablation.layer") == 2  # the registry's default (3) is beyond this model
    params.set("ablation.set", "periodic-5pct")
    with pytest.raises(ParamError, match="not installed for this model; choose from random, periodic, periodic-5pct"):
        params.set("ablation.set", "/etc/passwd")
    with pytest.raises(ParamError):
        params.set("ablation.set", "x" * 5000)
    assert params.target("ablation.set") == "periodic-5pct"
    assert params.set("ablation.layer", 3) == 2  # clamped, as every number is


def test_a_patch_is_checked_against_the_model(tmp_path):
    specs = fitted_specs(INSTRUMENT_PARAMS, 32, 3, None).values()
    with pytest.raises(PatchError) as caught:
        parse_patch("name: x\nstart:\n  ablation.units: [600]\n  ablation.set: periodic\n", "p.yaml", specs)
    first, second = caught.value.errors
    assert first.startswith("p.yaml:3: start.ablation.units:") and "0..31" in first
    assert second.startswith("p.yaml:4: start.ablation.set:") and "not installed" in second
    parse_patch("name: x\nstart:\n  ablation.units: [600]\n", "p.yaml")  # without the model: no such check


def test_patch_check_refuses_a_unit_the_shipped_model_lacks(tmp_path):
    patch = tmp_path / "units.yaml"
    patch.write_text("name: units\nstart: {ablation.units: [600]}\n")
    result = run_cli("patch", "check", str(patch))
    assert result.returncode == 2
    assert result.stderr.strip() == f"{patch}:2: start.ablation.units: ablation.units: this model's layers have units 0..511, not 600"


def test_a_value_that_got_past_every_check_skips_a_note_and_the_music_goes_on(caplog):
    params = Parameters()  # not fitted to the model: 600 gets through to the model thread
    engine, _, out = engine_for(Limits(seconds=3.0), params=params)
    engine.start()
    while len(out.notes) < 3 and not engine.finished.is_set():
        engine.wait(0.01)
    with caplog.at_level(logging.ERROR, logger="instrument.live.engine"):
        params.set("ablation.units", [600], smoothing_ms=0)
        set_at = clock()
        assert engine.wait(30)
    assert engine.error is None and engine.stop_reason == "limit reached"
    assert engine.failures >= 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "0..47" in errors[0].getMessage()  # logged once, not per note
    assert sum(1 for note, _ in out.notes if note.on > set_at + 0.5) > 5  # it played on to the end


def test_a_fault_inside_the_network_skips_a_note_and_the_music_goes_on():
    params = Parameters()
    engine, _, out = engine_for(Limits(seconds=4.0), params=params)
    net = engine.composer.stepper._net
    real, calls = net.step, []

    def flaky(*args, **kwargs):  # a fault injected where no controller can reach: the kernel
        calls.append(1)
        if len(calls) in (10, 11, 20):
            raise RuntimeError("injected fault")
        return real(*args, **kwargs)

    net.step = flaky
    engine.start()
    assert engine.wait(30)
    assert engine.error is None and engine.stop_reason == "limit reached"
    assert engine.failures == 3 and len(calls) > 20


def test_a_fault_that_never_clears_ends_the_performance_cleanly():
    params = Parameters()
    engine, _, out = engine_for(Limits(seconds=30.0), params=params)
    engine.start()

    def broken(*args, **kwargs):
        raise RuntimeError("broken for good")

    engine.composer.stepper._net.step = broken
    assert engine.wait(10)
    assert isinstance(engine.error, RuntimeError) and out.closed_at is not None
    assert engine.failures > 20
