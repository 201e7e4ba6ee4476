"""``run.py info``: what a checkpoint holds (architecture, size, metadata)."""

from __future__ import annotations

import argparse
import json

from instrument.model import checkpoint

HELP = "describe a model checkpoint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="checkpoint (default: the shipped model)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def describe(path: str | None) -> dict:
    model, metadata, where = checkpoint.load_or_default(path)
    cfg = model.config
    return {
        "path": where,
        "file_size_bytes": checkpoint.file_size(where),
        "layers": cfg.layers,
        "hidden_size": cfg.hidden,
        "vocab_size": cfg.vocab_size,
        "parameters": model.parameter_count(),
        "parameters_with_initial_state": model.parameter_count(initial_state=True),
        "architecture": f"{cfg.layers} x {cfg.hidden} LSTM over {cfg.vocab_size} tokens",
        "step": step_path(model),
        "metadata": metadata,
    }


def step_path(model) -> dict:
    """Which step path live play runs this model on (one voice), at which precision, and why not
    the fast one where it is not."""
    from instrument.model import fast_step
    from instrument.model.stepper import Stepper

    stepper = Stepper(model, voices=1)
    return {"backend": stepper.backend, "precision": stepper.precision, "why_not_fast": fast_step.why_not}


def run(args: argparse.Namespace) -> int:
    info = describe(args.model)
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    print(f"{info['path']}: {info['architecture']}, {info['parameters']:,} parameters, {info['file_size_bytes'] / 1e6:.1f} MB")
    step = info["step"]
    print(f"  live step: {step['backend']}, {step['precision']}" + (f" ({step['why_not_fast']})" if step["why_not_fast"] else ""))
    for key, value in info["metadata"].items():
        if isinstance(value, list) and len(value) > 6:
            value = f"[{len(value)} values, last {value[-1]:.4g}]"
        print(f"  {key}: {value}")
    return 0
