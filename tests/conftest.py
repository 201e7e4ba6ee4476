"""Shared fixtures: small models built in the test (never the shipped one), paths."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from instrument.model import checkpoint
from instrument.model.network import FolkRNN
from bench.harness.jack_server import jack_ports, start_jack, stop_jack
from tests.helpers import make_model, plain_model
from tests.player import STARTED


@pytest.fixture(autouse=True)
def no_play_outlives_its_test():
    """A test that fails while ``play`` runs must not leave it running: its ports would stay on the
    JACK server, where a later test (or run) could connect to them instead of its own."""
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


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
    path = tmp_path / "plain.pt"
    checkpoint.save(path, plain_model(), {"name": "test-plain"})
    return path


@pytest.fixture
def lobotomy_checkpoint(tmp_path) -> Path:
    """A plain model of three layers with a 'periodic' ablation set installed beside it: what the
    lobotomy patch (layer 3, set 'periodic') needs of the model it plays."""
    import json

    path = tmp_path / "plain3.pt"
    model = plain_model(layers=3)
    checkpoint.save(path, model, {"name": "test-plain-3"})
    sets = path.with_suffix(".ablation")
    sets.mkdir()
    for layer in (1, 2, 3):
        units = list(range(model.config.hidden))[::-1]
        (sets / f"periodic-layer{layer}.json").write_text(json.dumps({"layer": layer, "units": units}))
    return path


@pytest.fixture
def jack_256():
    """A JACK dummy server of our own at 256 frames (5.3 ms), the period a performer would choose,
    real-time where allowed: without it a busy machine makes the server itself miss cycles."""
    if not shutil.which("jackd"):
        pytest.skip("jackd is not installed")
    name = f"folk-fluid-test-{os.getpid()}"
    server = start_jack(name, frames=256, realtime=True)
    try:
        yield name
    finally:
        stop_jack(server)


@pytest.fixture(scope="session", autouse=True)
def a_jack_server_per_worker(request):
    """Under pytest-xdist (``-n 2``) each worker plays on a JACK server of its own, named in
    ``JACK_DEFAULT_SERVER`` for everything it starts: two tests never meet on one server (client
    names, ports, a server restarted)."""
    if os.environ.get("PYTEST_XDIST_WORKER") and shutil.which("jackd"):
        request.getfixturevalue("jack_server")
    yield


@pytest.fixture(scope="session")
def jack_server():
    """A real JACK server (dummy driver, 32 frames at 48 kHz: a 0.67 ms period).

    Uses the server CI started (``JACK_DEFAULT_SERVER``) when it answers; otherwise starts one
    under its own name for this test session and stops it afterwards. Yields the server name.
    """
    if not shutil.which("jackd"):
        pytest.skip("jackd is not installed (Debian package jackd2)")
    name = os.environ.get("JACK_DEFAULT_SERVER")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if name and not worker and jack_ports(name):  # it answers
        yield name
        return
    name = f"folk-instrument-test-{worker or os.getpid()}-{os.getpid()}"
    server = start_jack(name)  # as CI starts it: 32 frames, no real-time priority
    previous = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = name
    try:
        yield name
    finally:
        stop_jack(server)
        if previous is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = previous

