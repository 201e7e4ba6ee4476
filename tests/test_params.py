"""The one check of a value (ParamSpec.coerce through Parameters.set): clamped for live
controllers, refused for the command line and a patch."""

import math

import pytest

from instrument.live.params import ParamError, Parameters


def test_a_live_controller_value_out_of_range_is_clamped_with_a_warning():
    params, warnings = Parameters(), []
    assert params.set("temperature", 9.0, source="knob", warn=warnings.append) == 4.0
    assert warnings == ["temperature=9.0 is outside 0.0..4.0; clamped to 4.0 (from knob)"]
    assert params.set("bias.scale", 2) == "minor"  # a fader picks a choice by index


def test_the_command_line_and_a_patch_refuse_what_a_controller_would_have_clamped():
    params = Parameters()
    with pytest.raises(ParamError, match="tempo=9999 is outside 20.0..320.0 BPM"):
        params.set("tempo", 9999, clamp=False)
    with pytest.raises(ParamError, match="takes one of"):
        params.set("bias.scale", 2, clamp=False)
    assert params.get("tempo") == 110.0 and params.get("bias.scale") == "none"


@pytest.mark.parametrize("value", [True, "0.5", None, math.nan, math.inf, [1.0]])
def test_a_number_is_a_finite_int_or_float_and_nothing_else(value):
    with pytest.raises(ParamError):
        Parameters().set("temperature", value)


def test_a_timbre_is_taken_in_a_users_spelling_and_an_unknown_one_refused_by_the_same_check():
    params = Parameters()
    assert params.set("timbre", "Tin Whistle", clamp=False) == "tin-whistle"  # the command line, a patch
    assert params.set("timbre", "bow", source="OSC") == "fiddle"  # a controller, an alias
    assert params.set("timbre", 0, source="knob") == params.specs["timbre"].choices[0]  # a knob picks by index
    with pytest.raises(ParamError, match="unknown timbre 'kazoo'"):
        params.set("timbre", "kazoo", source="OSC")
    with pytest.raises(ParamError, match="takes one of"):
        params.set("timbre", 0, clamp=False)
    assert params.get("timbre") == params.specs["timbre"].choices[0]


def test_setting_what_a_parameter_already_holds_changes_nothing_and_listeners_hear_only_their_names():
    params = Parameters()
    heard: list[tuple[str, object]] = []
    everything: list[str] = []
    params.listen(lambda change: heard.append((change.name, change.value)), "gain", "timbre")
    params.listeners.append(lambda change: everything.append(change.name))
    params.set("gain", -6.0, source="knob")
    version = params.version
    params.set("gain", -6.0, source="knob")  # the same value from the same source: nothing moves
    assert params.version == version and heard == [("gain", -6.0)]
    params.set("gain", -6.0, source="fader")  # another source: the view shows who moved it last
    params.set("swing", 0.5)
    assert heard == [("gain", -6.0), ("gain", -6.0)] and everything == ["gain", "gain", "swing"]
    assert params.source("gain") == "fader"
    with pytest.raises(ParamError):
        params.listen(print, "no.such.parameter")
