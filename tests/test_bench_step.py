"""bench/step.py runs end to end and prints its figures as JSON (a smoke test, not a timing)."""

import importlib.util
import json

import pytest

from instrument.model import fast_step
from tests.helpers import ROOT


@pytest.mark.skipif(not fast_step.available(), reason="fast kernel unavailable on this machine")
def test_bench_step_quick_json(small_checkpoint, capsys):
    spec = importlib.util.spec_from_file_location("bench_step", ROOT / "bench" / "step.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--quick", "--json", "--model", str(small_checkpoint), "--tunes", "8", "--steps", "10",
                       "--onset-seconds", "0.2"]) == 0
    result = json.loads(capsys.readouterr().out)
    for batch in ("batch1", "batch2", "batch4", "batch8", "batch16"):  # an ensemble's voices: 1, 2, 4, 8
        for name in ("naive_lstmcell", "numpy_reference", "ours") + (("ours_per_voice",) if batch != "batch1" else ()):
            cell = result[batch][name]
            assert set(cell) == {"p50_ms", "p99_ms"} and 0 < cell["p50_ms"] <= cell["p99_ms"]
    assert result["threads_1"]["batch8"]["per_voice_vs_one_voice"] > 0
    assert result["offline_tokens_per_s"] > 0
    assert set(result["onset"]) == {"voices1_threads1", "voices1_threads2", "voices16_threads1", "voices16_threads2"}
    assert result["threads_1"]["batch1"]["other_load_cores"] >= 0
