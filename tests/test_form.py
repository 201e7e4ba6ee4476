"""A tune's form: parts, repeats, endings and bars counted as a player counts them."""

from __future__ import annotations

from instrument.music.form import part_openings, tune_form
from instrument.music.notes import tune_notes
from instrument.music.tunes import Tune, parse_tunes
from tests.helpers import DATA


def form(body: str, meter: str = "4/4"):
    return tune_form(Tune(meter, "maj", body.split()))


BAR = "C D E F G A B c"  # one full 4/4 bar of eighths


def test_two_repeated_eight_bar_parts():
    part = " | ".join([BAR] * 8)
    f = form(f"|: {part} :| |: {part} :|")
    assert f.repeated_parts == 2 and f.two_repeated_parts and not f.has_endings
    assert [p.bars for p in f.parts] == [8, 8]


def test_a_pickup_and_the_short_last_bar_it_completes_count_as_one_bar():
    part = "G | " + " | ".join([BAR] * 7) + " | C D E F G A B"  # pickup eighth, 7 bars, 7 eighths
    f = form(f"{part} :| {part} :|")
    assert [p.bars for p in f.parts] == [8, 8] and f.two_repeated_parts


def test_the_first_ending_counts_and_the_second_replaces_it():
    body = " | ".join([BAR] * 7) + f" |1 {BAR} :| |2 {BAR} | " + " | ".join([BAR] * 8) + " :|"
    f = form(body)
    assert [p.bars for p in f.parts] == [8, 8]
    assert f.parts[0].endings and not f.parts[1].endings and f.has_endings


def test_a_two_bar_second_ending_is_passed_whole():
    body = " | ".join([BAR] * 6) + f" |1 {BAR} | {BAR} :| |2 {BAR} | {BAR} | " + " | ".join([BAR] * 8) + " |"
    f = form(body)
    assert [(p.bars, p.repeated) for p in f.parts] == [(8, True), (8, False)]


def test_a_song_with_no_repeats_is_one_unrepeated_part():
    f = form(" | ".join([BAR] * 12) + " |")
    assert [(p.bars, p.repeated) for p in f.parts] == [(12, False)] and not f.has_repeat


def test_folk_rnn_v2s_own_tunes_are_mostly_two_repeated_parts_of_eight_bars():
    tunes = parse_tunes((DATA / "folkrnn_v2_samples.txt").read_text())
    forms = [tune_form(t) for t in tunes]
    assert sum(f.has_repeat for f in forms) == 59  # 92%
    assert sum(f.two_repeated_parts for f in forms) == 50  # 78%
    assert sum(f.has_endings for f in forms) == 10  # 16%
    parts = [p for f in forms for p in f.parts]
    assert sum(p.bars == 8 for p in parts) / len(parts) > 0.6


def test_a_part_opens_again_each_time_it_is_played():
    body = f"G | {BAR} | C D E F G A B :| |: {BAR} | {BAR} :|"
    tune = Tune("4/4", "maj", body.split())
    openings = part_openings(tune, tune_notes(tune))
    assert [(o.start, o.pitch) for o in openings] == [(0.0, 67), (8.0, 67), (16.0, 60), (24.0, 60)]


def test_a_pickup_before_a_repeat_sign_opens_the_part_it_leads_into():
    tune = Tune("4/4", "maj", f"G |: {BAR} | C D E F G A B :|".split())
    openings = part_openings(tune, tune_notes(tune))
    assert [o.start for o in openings] == [0.0, 8.0]  # the pickup, then the repeat from the |:
