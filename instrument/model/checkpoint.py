"""Our checkpoint format: one torch file holding config, weights, vocabulary and metadata.

Loaded with ``weights_only=True`` (no pickled code runs), checked against the vocabulary
(its order is the model's dimension order) and against the config's shapes, so a wrong or
damaged file is a one-line user error instead of a traceback mid-performance.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from instrument.model import vocab
from instrument.model.catalog import shipped, shipped_name
from instrument.errors import UsageError
from instrument.model.network import FolkRNN, ModelConfig

FORMAT = "folk-instrument-checkpoint"
VERSION = 1

def resolve(spec: str | Path | None) -> Path:
    """``--model`` as given: a shipped model's name (default ``session``) or a checkpoint's path."""
    name = shipped_name(spec)
    if name is not None:
        path = shipped(name)
        if not path.is_file():
            raise UsageError(f"the shipped model {path} is missing; reinstall the package or give --model PATH")
        return path
    return Path(spec)


def save(path: str | Path, model: FolkRNN, metadata: dict[str, Any] | None = None, half: bool = False) -> None:
    """Write ``model`` with its config, the vocabulary and ``metadata``.

    ``half`` stores the weights as float16 (the shipped model: half the size, and the live
    path converts back to float32 once at load).
    """
    state = {k: (v.half() if half else v.float()).clone() for k, v in model.state_dict().items()}
    blob = {
        "format": FORMAT,
        "version": VERSION,
        "config": model.config.to_dict(),
        "vocab": list(vocab.TOKENS),
        "state_dict": state,
        "metadata": json.loads(json.dumps(metadata or {}, default=str)),  # plain types only: loads weights-only
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)


def load(path: str | Path) -> tuple[FolkRNN, dict[str, Any]]:
    """Read a checkpoint into an eval-mode float32 model; raise UsageError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"model file {str(path)!r} not found; give --model PATH to a checkpoint")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a damaged file
        raise UsageError(f"{path}: not a readable checkpoint ({type(error).__name__}); re-save or re-import it") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise UsageError(f"{path}: not a {FORMAT} file; import an original folk-rnn pickle with 'run.py import-folkrnn'")
    if list(blob.get("vocab", ())) != list(vocab.TOKENS):
        raise UsageError(f"{path}: its vocabulary differs from the folk-rnn v2 vocabulary (137 tokens in order)")
    state = _checked_state(path, blob)
    try:
        model = FolkRNN(ModelConfig.from_dict(blob["config"]))
        model.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"{path}: wrong-shaped checkpoint ({first[:160]})") from None
    model.eval()
    return model, dict(blob.get("metadata", {}))


def _checked_state(path: Path, blob: dict) -> dict[str, torch.Tensor]:
    """The weights as float32, once their names and shapes match the config and every value is
    finite: checked before the network is built, so a config that asks for 300 layers is refused
    at once instead of after allocating them, and damaged weights (NaN) never play token soup."""
    config, state = blob.get("config"), blob.get("state_dict")
    if not isinstance(config, dict) or not isinstance(state, dict):
        raise UsageError(f"{path}: wrong-shaped checkpoint (no config or no weights)")
    try:
        config = ModelConfig.from_dict(config)
    except TypeError as error:
        raise UsageError(f"{path}: wrong-shaped checkpoint (config: {str(error)[:120]})") from None
    sizes = (config.vocab_size, config.layers, config.hidden)
    if not all(type(n) is int and n >= 1 for n in sizes) or config.vocab_size != vocab.SIZE:
        raise UsageError(f"{path}: wrong-shaped checkpoint (config: {config.vocab_size} tokens, {config.layers} layers "
                         f"of {config.hidden} units; the vocabulary has {vocab.SIZE} tokens and sizes are whole numbers)")
    expected = config.shapes()
    if set(expected) != set(state):
        held = sum(1 for name in state if str(name).endswith(".w_ih"))
        odd = sorted(map(str, set(expected) ^ set(state)))
        raise UsageError(f"{path}: wrong-shaped checkpoint (its config says {config.layers} layers, its weights hold "
                         f"{held}; {len(odd)} tensor names differ, e.g. {odd[0][:60]!r})")
    for name in expected:
        tensor = state[name]
        if not isinstance(tensor, torch.Tensor):
            raise UsageError(f"{path}: wrong-shaped checkpoint (tensor {name!r} is not a tensor)")
        if tuple(tensor.shape) != expected[name]:
            raise UsageError(f"{path}: wrong-shaped checkpoint (tensor {name!r} is {tuple(tensor.shape)}, the config "
                             f"({config.layers} x {config.hidden}) makes it {expected[name]})")
        if not tensor.is_floating_point():
            raise UsageError(f"{path}: tensor {name!r} holds {tensor.dtype} values, not weights; re-save the model")
    weights = {}
    for name, tensor in state.items():
        tensor = tensor.float()
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            raise UsageError(f"{path}: tensor {name!r} holds {bad} NaN or infinite value(s): the weights are damaged "
                             f"(training diverged?); use an earlier checkpoint or re-train")
        weights[name] = tensor
    return weights


def file_size(path: str | Path) -> int:
    return Path(path).stat().st_size


def load_or_default(spec: str | Path | None) -> tuple[FolkRNN, dict[str, Any], str]:
    """The model a command plays: ``spec`` (a shipped model's name or a path), else the default.

    Returns (model, metadata, the path it came from).
    """
    path = resolve(spec)
    model, meta = load(path)
    return model, meta, str(path)
