"""The command-line contracts of generate and info, and their error paths."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from instrument.model import checkpoint
from instrument.model.network import FolkRNN, ModelConfig
from instrument.music.tunes import parse_tunes
from tests.helpers import ROOT, run_cli


def one_line_error(result, *words):
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("generate", "notes", "info", "import-folkrnn"):
        assert command in result.stdout


def test_generate_is_reproducible_and_reads_back(small_checkpoint):
    args = ("generate", "--model", str(small_checkpoint), "--meter", "6/8", "--mode", "dor", "-n", "3", "--seed", "4", "--max-tokens", "60")
    first, second = run_cli(*args), run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    tunes = parse_tunes(first.stdout)
    assert len(tunes) == 3 and all(t.meter == "6/8" and t.mode == "dor" for t in tunes)
    assert all(len(t.body) <= 60 for t in tunes)
    other = run_cli(*args[:-4], "--seed", "5", "--max-tokens", "60")
    assert other.stdout != first.stdout


def test_generate_json_and_abc_formats(small_checkpoint):
    result = run_cli("generate", "--model", str(small_checkpoint), "-n", "2", "--seed", "1", "--format", "json",
                     "--prompt", "|: G c", "--max-tokens", "40", "--meter", "4/4", "--mode", "min")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 2
    for row in rows:
        assert set(row) >= {"meter", "mode", "tokens", "ended", "abc"}
        assert row["tokens"][:3] == ["|:", "G", "c"]
        assert row["meter"] == "4/4" and row["mode"] == "min"
        assert isinstance(row["ended"], bool)
        assert "K:Cmin" in row["abc"] and "L:1/8" in row["abc"] and "M:4/4" in row["abc"]
    abc = run_cli("generate", "--model", str(small_checkpoint), "-n", "2", "--seed", "1", "--format", "abc", "--mode", "mix")
    assert abc.stdout.count("X:") == 2 and "K:Cmix" in abc.stdout


def test_the_model_chooses_meter_and_mode_when_not_given(small_checkpoint, tmp_path):
    out = tmp_path / "t.txt"
    result = run_cli("generate", "--model", str(small_checkpoint), "-n", "8", "--seed", "2", "--max-tokens", "10", "--out", str(out))
    assert result.returncode == 0 and result.stdout == ""
    tunes = parse_tunes(out.read_text())
    assert len(tunes) == 8
    assert len({(t.meter, t.mode) for t in tunes}) > 1


@pytest.mark.parametrize(
    "args, words",
    [
        (("--prompt", "G ^e c"), ("'^e'", "nearest valid tokens")),
        (("--meter", "5/4"), ("unknown meter", "4/4")),
        (("--mode", "lydian"), ("unknown mode", "dor")),
        (("--temperature", "-1"), ("--temperature",)),
        (("--model", "/nonexistent/model.pt"), ("not found",)),
        (("--frobnicate",), ("unrecognized arguments",)),
        (("--seed", "-1"), ("--seed", "a seed is a whole number from 0")),  # numpy's traceback before
    ],
)
def test_generate_bad_input_is_one_line(args, words):
    one_line_error(run_cli("generate", *args), *words)


def test_corrupt_and_wrong_shaped_checkpoints(tmp_path, small_model):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 100)
    one_line_error(run_cli("generate", "--model", str(corrupt)), "not a readable checkpoint")

    wrong = tmp_path / "wrong.pt"
    checkpoint.save(wrong, small_model)
    blob = torch.load(wrong, weights_only=True)
    blob["config"]["hidden"] = 48  # weights say 32
    torch.save(blob, wrong)
    one_line_error(run_cli("generate", "--model", str(wrong)), "wrong-shaped")

    other = tmp_path / "other.pt"
    torch.save({"hello": torch.zeros(3)}, other)
    one_line_error(run_cli("info", "--model", str(other)), "not a folk-instrument-checkpoint")


def test_a_checkpoint_with_nan_weights_is_refused_naming_the_tensor(tmp_path, small_model):
    path = tmp_path / "nan.pt"
    checkpoint.save(path, small_model)
    blob = torch.load(path, weights_only=True)
    blob["state_dict"]["layers.1.w_hh"][5, 7] = float("nan")
    blob["state_dict"]["out.bias"][3] = float("inf")
    torch.save(blob, path)
    for command in ("generate", "info"):
        one_line_error(run_cli(command, "--model", str(path)), "tensor 'layers.1.w_hh'", "NaN or infinite")
    fine = tmp_path / "fine.pt"
    checkpoint.save(fine, small_model)
    assert run_cli("info", "--model", str(fine)).returncode == 0  # the check passes good weights


def test_a_config_of_300_layers_is_refused_before_anything_is_built(tmp_path, small_model):
    """It used to build the network the config asks for (2.7 GB for 300 x 512) and only then find
    the weights did not fit. The peak memory of a process that loads it shows what was built."""
    path = tmp_path / "deep.pt"
    checkpoint.save(path, FolkRNN(ModelConfig(layers=3, hidden=512)))
    blob = torch.load(path, weights_only=True)
    blob["config"]["layers"] = 300
    torch.save(blob, path)
    one_line_error(run_cli("generate", "--model", str(path)), "its config says 300 layers, its weights hold 3")
    probe = ("import resource, sys\nfrom instrument.model import checkpoint\nfrom instrument.errors import UsageError\n"
             "try:\n    checkpoint.load(sys.argv[1])\nexcept UsageError:\n    pass\n"
             "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)")
    peak = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=120)
    assert peak.returncode == 0, peak.stderr
    assert int(peak.stdout) < 1000, f"loading the refused checkpoint peaked at {peak.stdout.strip()} MB"


def test_generate_writes_each_tune_as_it_is_made_and_ctrl_c_keeps_them(tmp_path, small_checkpoint):
    """``generate -n 1000000`` printed nothing for 30 s (it wrote once, at the end)."""
    for form in ("tokens", "json"):
        out = tmp_path / f"many.{form}"
        proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "generate", "--model", str(small_checkpoint),
                                 "-n", "1000000", "--seed", "1", "--max-tokens", "40", "--format", form, "--out", str(out)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while out.stat().st_size < 2000 if out.exists() else True:
            assert proc.poll() is None and time.monotonic() < deadline, "no tunes were written while it ran"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and "Traceback" not in err, err
        text = out.read_text()
        tunes = parse_tunes(text) if form == "tokens" else json.loads(text)
        assert len(tunes) >= 3


def test_info_json(tmp_path):
    model = FolkRNN(ModelConfig())
    path = tmp_path / "v2.pt"
    checkpoint.save(path, model, {"name": "x", "epochs": 3}, half=True)
    result = run_cli("info", "--model", str(path), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert (info["layers"], info["hidden_size"], info["vocab_size"]) == (3, 512, 137)
    assert info["parameters"] == 5_599_881
    assert info["file_size_bytes"] == path.stat().st_size < 12 * 1024 * 1024  # fp16 fits the budget
    assert info["metadata"]["epochs"] == 3


def test_half_precision_checkpoint_loads_as_float32(tmp_path, small_model):
    path = tmp_path / "half.pt"
    checkpoint.save(path, small_model, half=True)
    model, _ = checkpoint.load(path)
    assert model.out.weight.dtype == torch.float32
    assert torch.allclose(model.out.weight, small_model.out.weight, atol=2e-3)
