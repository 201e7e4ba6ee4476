"""Shared fixtures: small models built in the test (never the shipped one), paths."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch

from instrument.model import checkpoint
from instrument.model.network import FolkRNN
from tests.helpers import make_model


@pytest.fixture
def small_model() -> FolkRNN:
    return make_model()


@pytest.fixture
def small_checkpoint(tmp_path, small_model) -> Path:
    path = tmp_path / "small.pt"
    checkpoint.save(path, small_model, {"name": "test-small"})
    return path


@pytest.fixture
def plain_checkpoint(tmp_path) -> Path:
    """A small random model biased to write plain notes and bars only (no chords, tuplets,
    repeats or endings, which an untrained model strings together for hundreds of tokens
    without a note): for timing tests, where the music must keep coming like a trained model's."""
    from instrument.model import vocab

    model = make_model(layers=2, hidden=32, seed=1)
    bias = {vocab.TokenClass.PITCH: 3.0, vocab.TokenClass.DURATION: 1.0, vocab.TokenClass.REST: -2.0}
    with torch.no_grad():
        for i, token in enumerate(vocab.TOKENS):
            cls = vocab.TOKEN_CLASS[i]
            model.out.bias[i] = bias.get(cls, -30.0)
            if token == "|":
                model.out.bias[i] = 5.0  # a bar line every ten notes or so
    path = tmp_path / "plain.pt"
    checkpoint.save(path, model, {"name": "test-plain"})
    return path


@pytest.fixture(scope="session")
def jack_server():
    """A real JACK server (dummy driver, 32 frames at 48 kHz: a 0.67 ms period).

    Uses the server CI started (``JACK_DEFAULT_SERVER``) when it answers; otherwise starts one
    under its own name for this test session and stops it afterwards. Yields the server name.
    """
    if not shutil.which("jackd"):
        pytest.skip("jackd is not installed (Debian package jackd2)")
    name = os.environ.get("JACK_DEFAULT_SERVER")
    if name and _jack_running(name):
        yield name
        return
    name = f"folk-instrument-test-{os.getpid()}"
    proc = subprocess.Popen(
        ["jackd", "--no-realtime", "-n", name, "-d", "dummy", "-r", "48000", "-p", "32"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    previous = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = name
    deadline = time.monotonic() + 20
    while not _jack_running(name):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("could not start a JACK dummy server")
        time.sleep(0.2)
    try:
        yield name
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        if previous is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = previous


def _jack_running(name: str) -> bool:
    env = dict(os.environ, JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1")
    try:
        return subprocess.run(["jack_lsp"], env=env, capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
