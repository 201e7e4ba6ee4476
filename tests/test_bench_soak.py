"""bench/soak.py: its RSS slope is fitted over the whole run after the first model switch (a model
loaded once is not growth), and a short soak runs end to end with play under tracemalloc (a smoke
test, not the 25-minute figure)."""

import json
import os
import subprocess
import sys

import pytest

from bench.soak import rss_fit
from tests.helpers import ROOT


def test_the_slope_is_fitted_from_the_first_model_switch_to_the_end():
    flat_then_step = [(float(t), 400.0 if t < 100 else 460.0, 12) for t in range(0, 1000, 2)]  # the switch at 100 s
    since, per_hour = rss_fit(flat_then_step, switched=100.0)
    assert since == 100.0 and abs(per_hour) < 1e-6  # the second model's weights, once, are not growth
    assert rss_fit(flat_then_step, switched=None)[1] > 50  # fitted from the first minute, the step is a slope
    growing = [(float(t), 400.0 + t / 36.0, 12) for t in range(0, 1000, 2)]  # 100 MB/h
    assert rss_fit(growing, switched=100.0)[1] == pytest.approx(100.0, rel=1e-6)


def test_a_short_soak_runs_end_to_end_and_writes_what_memory_grew(jack_server, small_checkpoint):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), "--minutes", "0.25", "--model",
                           str(small_checkpoint), "--tracemalloc", "8", "--json"], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, JACK_DEFAULT_SERVER=jack_server))
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["exit"] == 0 and result["stop"] == "limit reached" and result["notes"]["composed"] > 0
    assert result["rss_mb"]["start"] > 0 and result["rss_mb"]["per_hour"] is not None
    assert 12 <= result["played_s"] <= 25
    with open(result["tracemalloc"]) as trace:
        assert "traced" in trace.read()
