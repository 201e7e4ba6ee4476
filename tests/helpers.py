"""Helpers the tests share: paths, small models built in the test, running the command line
(the harness the benchmarks share too is ``bench.harness``).

Test modules import helpers from modules like this one, never from each other (or from conftest).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
sys.path.insert(0, str(ROOT))

from instrument.model.network import FolkRNN, ModelConfig  # noqa: E402


def make_model(layers: int = 3, hidden: int = 32, seed: int = 0) -> FolkRNN:
    """A small random model with lively weights (scaled up so its outputs are not flat)."""
    torch.manual_seed(seed)
    model = FolkRNN(ModelConfig(layers=layers, hidden=hidden))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model.eval()


def run_cli(*args: str, input: str | None = None, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python run.py ARGS`` as a user would, capturing text output (``env``: more variables)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=ROOT, input=input, capture_output=True, text=True, timeout=timeout, env=env,
    )
