"""The band's checks on real takes: ``render --ensemble ... --record`` with the shipped
model (the real network), the take's .mid read back with mido, track by track, and its .abc
read by abc2midi. What each check measures is printed in the assertion messages."""

from __future__ import annotations

import bisect
import re
import shutil
import subprocess
from pathlib import Path

import mido
import pytest

from instrument.music.accompany import chord_track
from instrument.music.drone import DRONE_PITCHES
from instrument.music.notes import tune_notes
from instrument.music.phrasing import seconds_per_quarter
from instrument.music.tunes import Tune, abc_body_tokens
from instrument.music.vamp import VAMP_HITS
from instrument.web.take import split_voices
from tests.helpers import run_cli

ONSET_S = 0.005  # "coincide": onsets within 5 ms
TEMPO = 110.0  # the default tempo, which the renders below keep


def render(tmp_path: Path, ensemble: str, *extra: str, bars: int = 64, seed: int = 3) -> Path:
    take = tmp_path / f"{ensemble}.mid"
    result = run_cli("render", "--ensemble", ensemble, "--bars", str(bars), "--seed", str(seed), "--synth", "numpy",
                     "--out", str(tmp_path / f"{ensemble}.wav"), "--record", str(take), *extra, timeout=300)
    assert result.returncode == 0, result.stderr
    assert take.is_file() and take.with_suffix(".abc").is_file() and (tmp_path / f"{ensemble}.wav").is_file()
    return take


def tracks(path: Path) -> dict[str, list[tuple[float, float, int, int]]]:
    """Each voice's track by its name: (on, off, pitch, tune) in seconds, the tune from the
    conductor track's markers; read with mido."""
    song = mido.MidiFile(path)
    assert song.type == 1
    tempo = next(m.tempo for m in song.tracks[0] if m.type == "set_tempo")
    seconds = lambda ticks: mido.tick2second(ticks, song.ticks_per_beat, tempo)  # noqa: E731
    marks, t = [], 0
    for m in song.tracks[0]:
        t += m.time
        if m.type == "marker":
            marks.append((seconds(t), int(m.text.split()[-1])))
    out = {}
    for track in song.tracks[1:]:
        name = next(m.name for m in track if m.type == "track_name")
        t, sounding, notes = 0, {}, []
        for m in track:
            t += m.time
            if m.type == "note_on" and m.velocity:
                sounding.setdefault(m.note, []).append(seconds(t))
            elif m.type in ("note_on", "note_off") and sounding.get(m.note):
                on = sounding[m.note].pop(0)
                notes.append((on, seconds(t), m.note, max([n for at, n in marks if at <= on + 1e-6] or [1])))
        assert not any(sounding.values()), f"{name}: a note-on without its note-off"
        out[name] = sorted(notes)
    return out


def lead_tunes(abc: Path) -> dict[int, tuple[Tune, float]]:
    """Each tune's lead part (V:1) from the take's .abc, and its first note's beat."""
    out = {}
    for block in re.split(r"\n(?=X:)", abc.read_text().strip()):
        lines = block.splitlines()
        number = int(lines[0][2:])
        meter = next(line[2:] for line in lines if line.startswith("M:"))
        key = next(i for i, line in enumerate(lines) if line.startswith("K:"))
        voices = split_voices(lines[key + 1:])
        tune = Tune(meter, lines[key][3:], abc_body_tokens(voices[0][2]))
        out[number] = (tune, min(n.start for n in tune_notes(tune).notes))
    return out


def duo_figures(take: Path) -> dict[str, float]:
    voices = tracks(take)
    lead, follow = voices["lead"], voices["follow"]
    onsets = [n[0] for n in lead]
    coinciding = same = 0
    for on, _, pitch, _ in follow:
        i = bisect.bisect_left(onsets, on - ONSET_S)
        there = [n for n in lead[i:i + 8] if abs(n[0] - on) <= ONSET_S]
        if there:
            coinciding += 1
            same += any(n[2] == pitch for n in there)
    used: dict[int, set[int]] = {}
    for n in lead:
        used.setdefault(n[3], set()).add(n[2] % 12)
    return {"lead": len(lead), "follow": len(follow), "coinciding": coinciding / len(follow),
            "same": same / coinciding, "pitch_classes": sum(n[2] % 12 in used[n[3]] for n in follow) / len(follow)}


def test_a_duo_s_follower_plays_the_lead_s_tune_with_its_own_variations(tmp_path):
    figures = duo_figures(render(tmp_path, "duo"))
    shown = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items())
    assert figures["lead"] > 100 and figures["follow"] > 100, shown  # two tracks with notes
    assert figures["coinciding"] >= 0.80, shown
    assert 0.40 <= figures["same"] <= 0.95, shown
    assert figures["pitch_classes"] >= 0.90, shown


def test_at_cohesion_1_the_follower_plays_in_unison(tmp_path):
    figures = duo_figures(render(tmp_path, "duo", "--set", "voice.2.cohesion=1"))
    assert figures["same"] >= 0.95 and figures["coinciding"] >= 0.95, figures


def test_the_unison_check_can_fail(tmp_path):
    """At cohesion 0 the follower plays its own line over the lead's rhythm: far from unison."""
    figures = duo_figures(render(tmp_path, "duo", "--set", "voice.2.cohesion=0", bars=16))
    assert figures["same"] < 0.40 and figures["coinciding"] >= 0.80, figures


def test_a_trio_s_chords_vamp_on_the_beat_groups_and_hold_the_lead_s_notes(tmp_path):
    take = render(tmp_path, "trio")
    voices = tracks(take)
    lead, chords = voices["lead"], voices["chords"]
    assert len(chords) > 200
    strokes = sorted({round(n[0], 4) for n in chords})
    at_once = [sum(1 for n in chords if n[0] <= s + 1e-4 < n[1]) for s in strokes]
    assert min(at_once) >= 2 and max(at_once) <= 4, (min(at_once), max(at_once))
    # the chord of each stroke: the pitch classes the chords track sounds from its bass stroke to the next
    booms = [s for s in strokes if any(abs(n[0] - s) < 1e-4 and n[2] <= 51 for n in chords)]
    hits = heard = 0
    for s in strokes:
        i = bisect.bisect_right(booms, s + 1e-4) - 1
        end = booms[i + 1] if i + 1 < len(booms) else float("inf")
        chord = {n[2] % 12 for n in chords if booms[i] - 1e-4 <= n[0] < end - 1e-4}
        under = [n for n in lead if n[0] <= s + ONSET_S and s < n[1]]
        if under:
            heard += 1
            hits += any(n[2] % 12 in chord for n in under)
    assert hits / heard >= 0.70, f"the lead's note is a chord tone at {hits}/{heard} strokes"
    # every stroke on its beat group's start (the bass) or the vamp's place in it (the chord), the
    # groups those the same rule makes of the lead's part in the take's .abc
    tunes = lead_tunes(take.with_suffix(".abc"))
    groups = {number: [(c.group.start, c.group.end) for c in chord_track(melody)] for number, (melody, _) in tunes.items()}
    first_on: dict[int, float] = {}
    for on, _, _, tune in lead:
        first_on.setdefault(tune, on)
    off_grid = []
    for on, _, pitch, tune in chords:
        melody, first = tunes[tune]
        spq = seconds_per_quarter(TEMPO, melody.meter)
        beat = first + (on - first_on[tune]) / spq
        group = next(((a, b) for a, b in groups[tune] if a - 1e-3 <= beat < b - 1e-3), None)
        boom = any(abs(b - on) < 1e-4 for b in booms[bisect.bisect_left(booms, on - 1e-3):][:2])
        offsets = [h.offset for h in VAMP_HITS[melody.meter] if h.bass == boom]
        if group is None or not any(abs(beat - group[0] - o) < ONSET_S / spq for o in offsets):
            off_grid.append((tune, round(beat, 3), pitch))
    assert not off_grid, f"{len(off_grid)} of {len(chords)} chord notes off their beat groups: {off_grid[:5]}"


def test_a_piper_s_drone_is_the_tune_s_tonic_and_fifth(tmp_path):
    """The drone holds C and G, the tonic and fifth of every tune's mode (tunes are in C); the
    issue's check counts them against each tune's final note as written in the take's .abc."""
    take = render(tmp_path, "pipes")
    voices = tracks(take)
    drone, lead = voices["drone"], voices["lead"]
    assert drone and {n[2] for n in drone} <= set(DRONE_PITCHES)
    finals = {number: max(tune_notes(t).notes, key=lambda n: (n.start, -n.pitch)).pitch % 12
              for number, (t, _) in lead_tunes(take.with_suffix(".abc")).items()}
    home = sum((n[2] - finals[n[3]]) % 12 in (0, 7) for n in drone)
    assert home / len(drone) >= 0.90, f"{home} of {len(drone)} drone notes are the tonic or fifth of the tune's final note {finals}"
    # struck at each part, held to the next strike, silent between tunes
    for tune in sorted({n[3] for n in drone}):
        mine = [n for n in drone if n[3] == tune and n[2] == DRONE_PITCHES[0]]
        melody = [n for n in lead if n[3] == tune]
        assert abs(mine[0][0] - melody[0][0]) < ONSET_S
        assert all(a[1] <= b[0] + ONSET_S for a, b in zip(mine, mine[1:]))
        assert mine[-1][1] <= max(n[1] for n in melody) + 0.25


@pytest.mark.skipif(not shutil.which("abc2midi"), reason="abc2midi is not installed (Debian package abcmidi)")
def test_abc2midi_reads_a_trio_take_s_score_voice_by_voice(tmp_path):
    take = render(tmp_path, "trio", bars=16)
    abc = take.with_suffix(".abc").read_text()
    assert abc.count("\nV:") >= 3 and '"' in abc  # a V: per voice, the chords named above the guitar's part
    out = tmp_path / "back.mid"
    result = subprocess.run(["abc2midi", str(take.with_suffix(".abc")), "-o", str(out)], capture_output=True, text=True, timeout=60)
    assert out.is_file(), result.stdout + result.stderr
    song = mido.MidiFile(out)
    counts = [sum(1 for m in t if m.type == "note_on" and m.velocity) for t in song.tracks]
    assert sum(1 for c in counts if c) == 3, counts  # lead, follower and chords all sound
    errors = [line for line in result.stdout.splitlines() if line.startswith("Error")]
    assert not errors, errors
