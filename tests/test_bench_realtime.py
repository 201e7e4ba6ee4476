"""bench/realtime.py runs end to end, both ``repeats`` ways, and prints its figures as JSON (a
smoke test, not a timing: it once passed ``repeats`` into the web argument and never ran)."""

import json
import subprocess
import sys

from tests.helpers import ROOT


def test_bench_realtime_runs_both_repeats_ways_and_prints_json(small_checkpoint):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "realtime.py"), "--model", str(small_checkpoint),
                           "--tempos", "200", "--seconds", "2", "--flood", "0", "--repeats", "play,skip",
                           "--no-jack", "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = json.loads(proc.stdout)["runs"]
    assert sorted(r["repeats"] for r in runs) == ["play", "skip"]
    for r in runs:
        assert r["onset_ms"]["n"] > 0 and 0 <= r["onset_ms"]["p50"] <= r["onset_ms"]["p99"]
