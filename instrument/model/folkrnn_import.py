"""Import (and export) the original folk-rnn v2 checkpoint: a Python-2 pickle of Lasagne weights.

Layout (docs/design.md §1): ``param_values[0]`` is the fixed 137x137 embedding; then per
LSTM layer fourteen arrays: W_in, W_hid and b for the in-, forget-, cell- and out-gates,
then cell_init and hid_init; then the dense W (hidden x vocab) and b. Input matrices are
applied as ``x @ W``. The layer count and sizes are read off the arrays.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from instrument.model import vocab
from instrument.errors import UsageError
from instrument.model.network import FolkRNN, ModelConfig

PER_LAYER = 14


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a checkpoint must not run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("copy_reg", "_reconstructor"),
        ("copyreg", "_reconstructor"),
        ("__builtin__", "object"),
        ("_codecs", "encode"),  # how Python 3 writes bytes into a protocol-2 pickle
        ("builtins", "object"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            module = {"copy_reg": "copyreg", "__builtin__": "builtins", "numpy.core.multiarray": "numpy._core.multiarray"}.get(module, module)
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_pickle(path: str | Path) -> dict[str, Any]:
    """Read the original checkpoint dict (Python-2 pickle, latin1 strings)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{str(path)!r} not found; give the path of folkrnn_v2.pkl")
    try:
        with path.open("rb") as f:
            data = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except Exception as error:
        raise UsageError(f"{path}: not a readable folk-rnn pickle ({type(error).__name__}: {str(error)[:120]})") from None
    if not isinstance(data, dict) or "param_values" not in data or "token2idx" not in data:
        raise UsageError(f"{path}: expected a dict with 'param_values' and 'token2idx' (folk-rnn v2 layout)")
    return data


def model_from_params(param_values: list[np.ndarray], token2idx: dict[str, int], where: str = "pickle") -> FolkRNN:
    """Build our model from the Lasagne parameter list; tokens are re-ordered into our vocabulary."""
    params = [np.asarray(p, dtype=np.float64) for p in param_values]
    layers, rest = divmod(len(params) - 3, PER_LAYER)
    if layers < 1 or rest:
        raise UsageError(f"{where}: param_values has {len(params)} arrays; expected 1 + 14 per layer + 2 (45 for v2)")
    if set(token2idx) != set(vocab.TOKENS):
        missing = sorted(set(vocab.TOKENS) - set(token2idx))[:5]
        raise UsageError(f"{where}: token2idx is not the folk-rnn v2 vocabulary (missing e.g. {missing})")
    # their index of each of our tokens: ours[i] == theirs[order[i]]
    order = np.array([token2idx[t] for t in vocab.TOKENS])
    embedding = params[0]
    hidden = params[2].shape[1]
    V = vocab.SIZE
    model = FolkRNN(ModelConfig(vocab_size=V, layers=layers, hidden=hidden))
    try:
        if embedding.shape[0] != V:
            raise ValueError(f"embedding is {embedding.shape}, expected {V} rows")
        with torch.no_grad():
            for l, layer in enumerate(model.layers):
                base = 1 + PER_LAYER * l
                w_in = [params[base + 3 * g] for g in range(4)]
                w_hid = [params[base + 3 * g + 1] for g in range(4)]
                b = [params[base + 3 * g + 2] for g in range(4)]
                if l == 0:
                    w_in = [(embedding @ w)[order] for w in w_in]  # one-hot rows, our token order
                _copy(layer.w_ih, np.concatenate([w.T for w in w_in]))
                _copy(layer.w_hh, np.concatenate([w.T for w in w_hid]))
                _copy(layer.bias, np.concatenate(b))
                _copy(layer.c0, params[base + 12].reshape(-1))
                _copy(layer.h0, params[base + 13].reshape(-1))
            dense_w, dense_b = params[-2], params[-1]
            _copy(model.out.weight, dense_w.T[order])
            _copy(model.out.bias, dense_b[order])
    except (ValueError, IndexError) as error:
        raise UsageError(f"{where}: wrong-shaped parameters ({error})") from None
    return model.eval()


def _copy(target: torch.Tensor, value: np.ndarray) -> None:
    if tuple(target.shape) != value.shape:
        raise ValueError(f"got {value.shape} where {tuple(target.shape)} belongs")
    target.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def params_from_model(model: FolkRNN) -> list[np.ndarray]:
    """Our model in the original Lasagne layout (our token order), e.g. for the numpy reference."""
    out: list[np.ndarray] = [np.eye(vocab.SIZE, dtype=np.float32)]
    H = model.config.hidden
    for layer in model.layers:
        w_ih = layer.w_ih.detach().numpy()
        w_hh = layer.w_hh.detach().numpy()
        bias = layer.bias.detach().numpy()
        for g in range(4):
            block = slice(g * H, (g + 1) * H)
            out += [w_ih[block].T.copy(), w_hh[block].T.copy(), bias[block].copy()]
        out += [layer.c0.detach().numpy().reshape(1, H).copy(), layer.h0.detach().numpy().reshape(1, H).copy()]
    out += [model.out.weight.detach().numpy().T.copy(), model.out.bias.detach().numpy().copy()]
    return out


def metadata_from_pickle(data: dict[str, Any], source: str) -> dict[str, Any]:
    """What the original checkpoint says about itself, kept beside the weights."""
    meta: dict[str, Any] = {"name": "folkrnn-v2-imported", "source": source, "trained": True}
    for key in ("experiment_id", "configuration", "epoch_since_start"):
        if key in data:
            meta[key] = data[key] if isinstance(data[key], (int, float, str)) else str(data[key])
    for key in ("losses_train", "losses_eval_valid"):
        if key in data:
            meta[key] = [float(x) for x in np.asarray(data[key], dtype=np.float64).reshape(-1)]
    return meta
