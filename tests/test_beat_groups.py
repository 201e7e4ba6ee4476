"""Beat groups: how each meter divides its bars for an accompanist, aligned to the bars as played."""

from __future__ import annotations

import pytest

from instrument.music.beat_groups import GROUP_QUARTERS, beat_groups, group_quarters
from instrument.music.notes import tune_notes
from instrument.music.tunes import Tune, parse_tunes
from tests.helpers import DATA


def groups(body: str, meter: str = "4/4") -> list[tuple[float, float, float]]:
    """(start, length, bar_offset) of every group as played."""
    return [(g.start, g.length, g.bar_offset) for g in beat_groups(tune_notes(Tune(meter, "maj", body.split())), meter)]


@pytest.mark.parametrize("meter, per_bar, size", [
    ("6/8", 2, 1.5), ("9/8", 3, 1.5), ("12/8", 4, 1.5), ("4/4", 2, 2.0), ("2/4", 2, 1.0), ("3/4", 1, 3.0), ("3/2", 3, 2.0),
])
def test_each_meter_divides_a_full_bar_into_its_dance_s_beat_groups(meter, per_bar, size):
    eighths = {"6/8": 6, "9/8": 9, "12/8": 12, "4/4": 8, "2/4": 4, "3/4": 6, "3/2": 12}[meter]
    bar = " ".join(["c"] * eighths)
    assert groups(f"{bar} | {bar} |", meter) == [(k * size, size, (k % per_bar) * size) for k in range(2 * per_bar)]
    assert group_quarters(meter) == size == GROUP_QUARTERS[meter]


def test_an_unknown_meter_is_named_with_the_valid_ones():
    with pytest.raises(ValueError, match="unknown meter '5/4'.*6/8"):
        group_quarters("5/4")


def test_a_pickup_at_the_tune_s_start_waits_for_the_first_downbeat():
    assert groups("G | c d e f g a b c' | c 7 :|")[0] == (0.5, 2.0, 0.0)


def test_a_replayed_pickup_lies_in_the_last_group_of_the_short_bar_it_completes():
    played = groups("G | c d e f g a b c' | c 7 :|")
    assert (6.5, 2.0, 2.0) in played  # the short last bar (3.5 beats) and the pickup again (0.5) are one bar
    assert [g[0] for g in played] == [0.5, 2.5, 4.5, 6.5, 8.5, 10.5, 12.5, 14.5]


def test_a_pickup_after_a_whole_bar_has_no_group_of_its_own():
    played = groups("c d e f g a b c | c d e f g a b c |: G | c 7 :|")
    assert (6.0, 2.0, 2.0) in played and (8.5, 2.0, 0.0) in played
    assert not [g for g in played if 8.0 <= g[0] < 8.5]


def test_a_bar_written_too_long_realigns_at_the_next_bar_line():
    assert groups("c d e f g a b c' c | c 8 |") == [(0.0, 2.0, 0.0), (2.0, 2.0, 2.0), (4.0, 0.5, 0.0),
                                                    (4.5, 2.0, 0.0), (6.5, 2.0, 2.0)]


def test_a_bar_of_rests_keeps_the_grid_running():
    assert [g[0] for g in groups("c 6 | z 6 | c 6 |", "6/8")] == [0.0, 1.5, 3.0, 4.5, 6.0, 7.5]


def test_groups_tile_folk_rnn_s_tunes_from_the_first_downbeat_to_the_last_note():
    for tune in parse_tunes((DATA / "folkrnn_v2_samples.txt").read_text()):
        score = tune_notes(tune)
        played = beat_groups(score, tune.meter)
        assert played and abs(played[-1].end - score.end) < 1e-6
        gaps = [(a.end, b.start) for a, b in zip(played, played[1:]) if abs(a.end - b.start) > 1e-6]
        # only a pickup after a whole bar (a |: part that starts with one) is left out
        bar = {"2/4": 2, "3/4": 3, "4/4": 4, "6/8": 3, "9/8": 4.5, "12/8": 6, "3/2": 6}[tune.meter]
        assert all(0 < b - a < bar for a, b in gaps), (tune.to_text()[:60], gaps)
        assert all(g.length <= GROUP_QUARTERS[tune.meter] + 1e-9 for g in played)
