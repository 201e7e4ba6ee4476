"""A running ``play`` given hostile input: an OSC unit the layer lacks, and an alias bomb and a
50 MB file saved as the patch. The music goes on, /state keeps answering on time, the old patch
stays in force, and each mistake is counted and said in one line."""

from __future__ import annotations

import os
import time

import pytest

from tests.helpers import DATA
from bench.harness.midi import notes_in
from bench.harness.osc import osc_message
from bench.harness.wait import wait_for
from tests.player import Player
from tests.timing import Jitter, clock, machine_jitter

STALL_S = 0.25  # a /state round trip while a patch is refused, beyond the machine's own jitter
ANSWER_S = 30.0  # how long a round trip may take before it counts as no answer (judged against STALL_S)

GOOD = "name: live\nmappings:\n  - source: {osc: /1/fader1}\n    target: tempo\n    range: [60, 180]\n"


def probe_until(player: Player, done, timeout: float = 60.0) -> list[tuple[float, float]]:
    """/state round trips, one every 20 ms, until ``done(state)`` holds: each (asked, answered) on
    ``tests.timing.clock``."""
    trips: list[tuple[float, float]] = []
    deadline = clock() + timeout
    while True:
        asked = clock()
        state = player.state(timeout=ANSWER_S)
        trips.append((asked, clock()))
        assert state is not None, f"play did not answer /state within {ANSWER_S:g} s"
        if done(state):
            return trips
        assert clock() < deadline, f"not done within {timeout:g} s: {player.counts(state)}"
        time.sleep(0.02)  # paces the probe: a round trip every 20 ms, as a performer's app polls


def late_trips(trips: list[tuple[float, float]], jitter: Jitter) -> list[str]:
    """The round trips longer than STALL_S plus what the machine stalled while each was under way."""
    return [f"{(answered - asked) * 1e3:.0f} ms (the machine's {jitter.near(asked, answered) * 1e3:.0f} ms)"
            for asked, answered in trips if answered - asked > STALL_S + jitter.near(asked, answered)]


def recorded(tmp_path) -> int:
    """Notes in the take as saved so far (the recording is rewritten whole every 2 s)."""
    take = tmp_path / "take.mid"
    return len(notes_in(take)[0]) if take.exists() else 0


def test_a_unit_the_layer_lacks_is_refused_and_the_music_goes_on(tmp_path, plain_checkpoint):
    player = Player(plain_checkpoint, "default.yaml", tmp_path)
    try:
        wait_for(lambda: recorded(tmp_path) > 0, 30, "the take's first notes on disk")  # playing
        ignored = player.counts()["osc"]["ignored"]
        player.send(osc_message("/ablation/units", 3, 600))
        player.send(osc_message("/ablation/units", 3, 17))
        state = player.wait_for(lambda s: s["ablation.units"] == [3, 17])
        assert player.counts(state)["osc"]["ignored"] == ignored + 1  # the first refused, the second taken
        before = recorded(tmp_path)
        wait_for(lambda: recorded(tmp_path) > before + 5, 30, "notes after the refusal in the take")  # notes keep coming
        assert player.proc.poll() is None and player.wait_for(lambda s: s["ablation.units"] == [3, 17])  # it answers
    finally:
        err = player.stop()
    warnings = [line for line in err.splitlines() if "600" in line]
    assert len(warnings) == 1 and "units 0..31, not 600" in warnings[0] and "Traceback" not in err


@pytest.mark.realtime
def test_an_alias_bomb_and_a_50_mb_file_saved_as_the_patch_are_refused_without_a_stall(tmp_path, plain_checkpoint):
    patch = tmp_path / "live.yaml"
    patch.write_text(GOOD)
    player = Player(plain_checkpoint, str(patch), tmp_path)

    def rejected(count: int):
        return lambda state: player.counts(state)["patch"]["rejected"] == count

    try:
        assert player.counts()["patch"] == {"reloads": 0, "rejected": 0}
        with machine_jitter() as jitter:
            patch.write_text((DATA / "alias-bomb.yaml").read_text())
            # each save is judged before the next: a watcher notices the file's last version, not every one
            during = probe_until(player, rejected(1))
            big = tmp_path / "big.tmp"
            with big.open("wb") as f:
                f.truncate(50_000_000)
            os.replace(big, patch)
            during += probe_until(player, rejected(2))
        player.send(osc_message("/1/fader1", 0.5))  # the old patch's mapping: tempo 60..180
        state = player.wait_for(lambda s: s["tempo"] == 120.0)
        assert player.counts(state)["patch"] == {"reloads": 0, "rejected": 2}
    finally:
        err = player.stop()
    # no stall (before the fix: 29 s and 6 s): every /state round trip on time, but for what the
    # machine stalled while it was under way
    late = late_trips(during, jitter)
    assert not late, f"{len(late)} of {len(during)} round trips late: {late[:5]}; {jitter}"
    refused = [line for line in err.splitlines() if "patch not loaded" in line]
    assert len(refused) == 2, err
    assert "live.yaml:7: patch: with its aliases" in refused[0] and "50,000,000 bytes" in refused[1]
    assert all(len(line) < 300 for line in refused) and "Traceback" not in err
