"""Training: a tiny model on a tiny corpus, resume, Ctrl-C, torchrun with one process."""

import signal
import subprocess
import sys
import time

import pytest

from instrument.model import checkpoint
from instrument.music.tunes import format_tunes, parse_tunes
from tests.helpers import DATA, ROOT, run_cli


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    tunes = parse_tunes((DATA / "folkrnn_v2_samples.txt").read_text())
    (d / "train.txt").write_text(format_tunes(tunes[:56]))
    (d / "valid.txt").write_text(format_tunes(tunes[56:]))
    return d


TINY = ("--hidden", "24", "--layers", "2", "--batch", "8", "--quiet")


def test_training_learns_and_writes_a_checkpoint(corpus, tmp_path):
    out = tmp_path / "m.pt"
    result = run_cli("train", "--data", str(corpus), "--out", str(out), "--epochs", "3", "--lr", "0.01", *TINY)
    assert result.returncode == 0, result.stderr
    model, meta = checkpoint.load(out)
    assert (model.config.layers, model.config.hidden) == (2, 24)
    assert len(meta["train_loss"]) == len(meta["valid_loss"]) == 3
    assert meta["train_loss"][-1] < meta["train_loss"][0]
    assert meta["valid_loss"][meta["best_epoch"] - 1] == min(meta["valid_loss"])
    assert meta["recipe"].startswith("folk-rnn v2")


def test_resume_continues_where_it_stopped(corpus, tmp_path):
    out = tmp_path / "m.pt"
    first = run_cli("train", "--data", str(corpus), "--out", str(out), "--epochs", "1", *TINY)
    assert first.returncode == 0, first.stderr
    again = run_cli("train", "--data", str(corpus), "--out", str(out), "--epochs", "2", "--resume", *TINY)
    assert again.returncode == 0, again.stderr
    state = checkpoint.torch.load(str(out) + ".train-state.pt", weights_only=True)
    assert state["history"]["epoch"] == 2 and len(state["history"]["valid_loss"]) == 2
    nothing = run_cli("train", "--data", str(corpus), "--out", str(tmp_path / "none.pt"), "--resume", *TINY)
    assert nothing.returncode == 2 and "nothing to resume" in nothing.stderr


def test_ctrl_c_saves_and_exits_cleanly(corpus, tmp_path):
    out = tmp_path / "m.pt"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "train", "--data", str(corpus), "--out", str(out), "--epochs", "500",
         "--hidden", "24", "--layers", "2", "--batch", "8"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while not out.exists() and time.monotonic() < deadline:  # the first epoch has finished
        time.sleep(0.2)
    assert out.exists()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "continue with --resume" in err
    state = checkpoint.torch.load(str(out) + ".train-state.pt", weights_only=True)
    assert 1 <= state["history"]["epoch"] < 500


def test_torchrun_single_process_uses_distributed_data_parallel(corpus, tmp_path):
    out = tmp_path / "ddp.pt"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", "--master_port=29533", str(ROOT / "run.py"), "train",
         "--data", str(corpus), "--out", str(out), "--epochs", "1", "--hidden", "16", "--layers", "1", "--batch", "16"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "DistributedDataParallel" in result.stderr
    model, meta = checkpoint.load(out)
    assert meta["epochs"] == 1


def test_missing_corpus_is_a_usage_error(tmp_path):
    result = run_cli("train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m.pt"))
    assert result.returncode == 2 and "run.py corpus" in result.stderr and "Traceback" not in result.stderr


def test_every_training_tune_is_taught_to_end(corpus):
    """Corpus files carry no </s>; without it the model never learns to stop a tune."""
    from instrument.model import vocab
    from instrument.training.train import load_split

    tunes = load_split(corpus / "train.txt", max_length=1000)
    assert len(tunes) == 56
    assert all(t[0] == vocab.INDEX[vocab.START] and t[-1] == vocab.INDEX[vocab.END] for t in tunes)
    assert all(vocab.INDEX[vocab.END] not in t[:-1] for t in tunes)
