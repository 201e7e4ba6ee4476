"""The importer against an independent numpy statement of docs/design.md §1."""

import pickle

import numpy as np
import pytest

from instrument.model import checkpoint, vocab
from instrument.model.folkrnn_import import params_from_model
from instrument.model.reference import NumpyFolkRNN
from instrument.model.stepper import Stepper
from tests.helpers import run_cli


def write_original_pickle(path, layers=3, hidden=512, vocab_order=None, seed=7):
    """A pickle in the original checkpoint's exact layout, with random weights.

    Written at protocol 2 with the module names Python 2's numpy used, as the real file is.
    """
    rng = np.random.default_rng(seed)
    tokens = list(vocab_order or vocab.TOKENS)
    V = len(tokens)
    params = [np.eye(V, dtype=np.float32)]
    size_in = V
    for _ in range(layers):
        for _gate in range(4):
            params += [
                rng.normal(0, 0.15, (size_in, hidden)).astype(np.float32),
                rng.normal(0, 0.08, (hidden, hidden)).astype(np.float32),
                rng.normal(0, 0.3, hidden).astype(np.float32),
            ]
        params += [rng.normal(0, 0.3, (1, hidden)).astype(np.float32), rng.normal(0, 0.3, (1, hidden)).astype(np.float32)]
        size_in = hidden
    params += [rng.normal(0, 0.4, (hidden, V)).astype(np.float32), rng.normal(0, 0.3, V).astype(np.float32)]
    data = {
        "param_values": params,
        "token2idx": {t: i for i, t in enumerate(tokens)},
        "experiment_id": "folkrnn_v2_test",
        "configuration": "config5",
        "epoch_since_start": 100,
        "losses_train": [1.5, 1.2],
        "losses_eval_valid": [1.4, 1.3],
    }
    blob = pickle.dumps(data, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path.write_bytes(blob)
    return data


@pytest.mark.parametrize("shuffled", [False, True])
def test_imported_stepper_matches_numpy_reference(tmp_path, shuffled):
    order = list(vocab.TOKENS)
    if shuffled:  # a pickle whose token2idx is in another order must still import right
        np.random.default_rng(1).shuffle(order)
    data = write_original_pickle(tmp_path / "v2.pkl", vocab_order=order)
    out = tmp_path / "imported.pt"
    result = run_cli("import-folkrnn", str(tmp_path / "v2.pkl"), str(out))
    assert result.returncode == 0, result.stderr
    model, meta = checkpoint.load(out)
    assert model.config.layers == 3 and model.config.hidden == 512
    assert model.parameter_count() == 5_599_881
    assert meta["experiment_id"] == "folkrnn_v2_test" and meta["losses_eval_valid"] == [1.4, 1.3]

    reference = NumpyFolkRNN(data["param_values"], data["token2idx"])
    stepper = Stepper(model, seed=3)
    stepper.force(vocab.START)
    previous = vocab.START
    worst = 0.0
    for _ in range(200):
        token = vocab.TOKENS[int(stepper.step()[0])]
        theirs = reference.step(previous)
        ours = stepper.readout.probs[0].numpy()
        ours_in_their_order = np.empty_like(ours)
        for t, i in data["token2idx"].items():
            ours_in_their_order[i] = ours[vocab.INDEX[t]]
        worst = max(worst, float(np.abs(ours_in_their_order - theirs).max()))
        previous = token
    assert worst < 1e-5, worst


def test_export_round_trip_matches_reference(small_model):
    """params_from_model gives the layout the reference reads, for our own models too."""
    reference = NumpyFolkRNN(params_from_model(small_model), vocab.INDEX)
    stepper = Stepper(small_model, seed=0)
    stepper.force(["<s>", "M:4/4", "K:Cmaj", "|:", "G"])
    for t in ["<s>", "M:4/4", "K:Cmaj", "|:"]:
        reference.step(t)
    stepper.step()
    np.testing.assert_allclose(stepper.readout.probs[0].numpy(), reference.step("G"), atol=1e-6)


def test_importer_rejects_bad_pickles(tmp_path):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"not a pickle at all")
    result = run_cli("import-folkrnn", str(bad), str(tmp_path / "o.pt"))
    assert result.returncode == 2 and "not a readable folk-rnn pickle" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1

    data = write_original_pickle(tmp_path / "short.pkl", layers=1, hidden=16)
    data["param_values"] = data["param_values"][:-1]
    (tmp_path / "short.pkl").write_bytes(pickle.dumps(data, protocol=2))
    result = run_cli("import-folkrnn", str(tmp_path / "short.pkl"), str(tmp_path / "o.pt"))
    assert result.returncode == 2 and "expected 1 + 14 per layer + 2" in result.stderr

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"param_values": [], "token2idx": {}, "x": print}, protocol=2))
    result = run_cli("import-folkrnn", str(evil), str(tmp_path / "o.pt"))
    assert result.returncode == 2 and "refusing to load" in result.stderr

    result = run_cli("import-folkrnn", str(tmp_path / "missing.pkl"), str(tmp_path / "o.pt"))
    assert result.returncode == 2 and "not found" in result.stderr
