"""Training: a tiny model on a tiny corpus, resume, Ctrl-C, torchrun with one process."""

import signal
import subprocess
import sys

import pytest

from instrument.model import checkpoint
from instrument.music.form import tune_form
from instrument.music.tunes import format_tunes, parse_tunes
from instrument.training.corpus import META_FIELDS, meta_path
from bench.harness.wait import wait_for
from tests.helpers import DATA, ROOT, run_cli


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """folk-rnn's 64 tunes as a corpus of two collections: 'even' and 'odd' (by position)."""
    d = tmp_path_factory.mktemp("corpus")
    tunes = parse_tunes((DATA / "folkrnn_v2_samples.txt").read_text())
    for name, part, first in (("train", tunes[:56], 0), ("valid", tunes[56:], 56)):
        (d / f"{name}.txt").write_text(format_tunes(part))
        rows = ["\t".join(META_FIELDS)]
        for i, tune in enumerate(part, first):
            row = {"collection": "even" if i % 2 == 0 else "odd", "source": f"s#{i}", "rhythm": "", "written_key": "",
                   "key": "", "mode_rule": "", "repeated_parts": str(tune_form(tune).repeated_parts)}
            rows.append("\t".join(row[f] for f in META_FIELDS))
        meta_path(d / f"{name}.txt").write_text("\n".join(rows) + "\n")
    return d


TINY = ("--hidden", "24", "--layers", "2", "--batch", "8", "--quiet")


def test_training_learns_and_writes_a_checkpoint(corpus, tmp_path):
    out = tmp_path / "m.pt"
    result = run_cli("train", "--data", str(corpus), "--out", str(out), "--epochs", "3", "--lr", "0.01", *TINY)
    assert result.returncode == 0, result.stderr
    model, meta = checkpoint.load(out)
    assert (model.config.layers, model.config.hidden) == (2, 24)
    # the checkpoint is the best epoch's model and carries the history up to it; the training state
    # beside it carries all three epochs (at lr 0.01 the best may come before the last)
    state = checkpoint.torch.load(str(out) + ".train-state.pt", weights_only=True)["history"]
    assert len(state["train_loss"]) == len(state["valid_loss"]) == 3
    assert state["train_loss"][-1] < state["train_loss"][0]
    assert state["best_epoch"] == meta["best_epoch"] == len(meta["valid_loss"])
    assert meta["valid_loss"] == state["valid_loss"][: meta["best_epoch"]]
    assert min(state["valid_loss"]) == meta["valid_loss"][-1]
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
    wait_for(lambda: out.exists() or proc.poll() is not None, 60, "the first epoch's checkpoint", step=0.2)
    assert out.exists(), proc.communicate()[1]
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

    tunes = load_split(corpus / "train.txt", max_length=1000).tunes
    assert len(tunes) == 56
    assert all(t[0] == vocab.INDEX[vocab.START] and t[-1] == vocab.INDEX[vocab.END] for t in tunes)
    assert all(vocab.INDEX[vocab.END] not in t[:-1] for t in tunes)


def test_training_can_select_collections_and_forms(corpus, tmp_path):
    from instrument.training.train import read_split

    out = tmp_path / "even.pt"
    result = run_cli("train", "--data", str(corpus), "--out", str(out), "--epochs", "1", "--collections", "even", *TINY)
    assert result.returncode == 0, result.stderr
    _, meta = checkpoint.load(out)
    assert meta["trained_on"]["train"] == {"even": 28} and meta["trained_on"]["valid"] == {"even": 4}
    two_part, _ = read_split(corpus / "train.txt", (), 2)
    out = tmp_path / "two.pt"
    result = run_cli("train", "--data", str(corpus), "--out", str(out), "--epochs", "1", "--min-repeated-parts", "2", *TINY)
    assert result.returncode == 0, result.stderr
    _, meta = checkpoint.load(out)
    assert sum(meta["trained_on"]["train"].values()) == len(two_part) < 56
    assert all(tune_form(t).two_repeated_parts for t in two_part)


def test_a_collection_weight_is_how_often_its_tunes_are_seen_an_epoch(corpus):
    import numpy as np

    from instrument.training.train import epoch_indices, load_split

    split = load_split(corpus / "train.txt", 1000)
    seen = epoch_indices(split, {"odd": 2.0, "even": 0.5}, np.random.default_rng(0))
    odd = [i for i, m in enumerate(split.meta) if m["collection"] == "odd"]
    assert all(seen.count(i) == 2 for i in odd)
    even_seen = len(seen) - 2 * len(odd)
    assert 6 <= even_seen <= 22  # about half of the 28, each at most once
    assert epoch_indices(split, {}, np.random.default_rng(0)) == list(range(56))


def test_fine_tuning_starts_from_the_given_model(corpus, tmp_path):
    start = tmp_path / "start.pt"
    assert run_cli("train", "--data", str(corpus), "--out", str(start), "--epochs", "1", *TINY).returncode == 0
    tuned = tmp_path / "tuned.pt"
    result = run_cli("train", "--data", str(corpus), "--out", str(tuned), "--epochs", "1", "--init", str(start),
                     "--lr", "0", "--dropout", "0", *TINY)
    assert result.returncode == 0, result.stderr
    a, _ = checkpoint.load(start)
    b, meta = checkpoint.load(tuned)
    assert all((x == y).all() for x, y in zip(a.state_dict().values(), b.state_dict().values()))  # lr 0: unchanged
    assert meta["init"]["path"] == str(start) and meta["init"]["valid_loss"]
    wrong = run_cli("train", "--data", str(corpus), "--out", str(tmp_path / "w.pt"), "--init", str(start),
                    "--hidden", "32", "--layers", "2", "--quiet")
    assert wrong.returncode == 2 and "--hidden 24" in wrong.stderr and wrong.stderr.count("\n") == 1


def test_bfloat16_autocast_trains(corpus, tmp_path):
    out = tmp_path / "bf16.pt"
    result = run_cli("train", "--data", str(corpus), "--out", str(out), "--epochs", "2", "--lr", "0.01", "--bf16", *TINY)
    assert result.returncode == 0, result.stderr
    _, meta = checkpoint.load(out)
    assert meta["train_config"]["bf16"] and meta["train_loss"][-1] < meta["train_loss"][0]


@pytest.mark.parametrize("args, words", [
    (("--weights", "odd"), "--weights takes NAME=W"),
    (("--weights", "odd=-1"), "--weights takes NAME=W"),
    (("--weights", "nosuch=2"), "nosuch"),
    (("--collections", "nosuch"), "even, odd"),
])
def test_bad_selections_are_one_line_errors(corpus, tmp_path, args, words):
    result = run_cli("train", "--data", str(corpus), "--out", str(tmp_path / "m.pt"), *args, *TINY)
    assert result.returncode == 2 and words in result.stderr and result.stderr.count("\n") == 1, result.stderr
