"""``run.py play`` in a subprocess as a performer starts it: quiet, with no controllers (``play``),
or steered and read over OSC on loopback as a performer's rig does (``Player``): shared by the
tests that play the whole instrument (MIDI out, recordings, controllers, the web page)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

from tests.helpers import ROOT
from bench.harness.net import free_tcp_port, free_udp_port
from bench.harness.osc import ask_state
from bench.harness.wait import wait_for

QUIET = ("--quiet", "--no-osc", "--no-myo", "--midi-in", "none")
STARTED: list[subprocess.Popen] = []  # killed after each test by conftest's no_play_outlives_its_test


def _start(args: list[str], cwd, **popen) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, str(ROOT / "run.py"), "play", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def play(*args: str, cwd=ROOT, **popen) -> subprocess.Popen:
    """``run.py play`` without controllers (QUIET) and ``args``, text pipes; ``popen``: more Popen
    arguments. It does not outlive the test."""
    proc = _start([*QUIET, *args], cwd, **popen)
    STARTED.append(proc)
    return proc


class Lines:
    """The lines a running process writes to ``pipe``, kept as they come by a thread of their own,
    so that a test can wait for a line (``wait_for(lambda: lines.said(...))``) while it runs."""

    def __init__(self, pipe):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=lambda: self.lines.extend(pipe), name="lines", daemon=True)
        self._thread.start()

    def said(self, *words: str) -> bool:
        """Whether a line so far holds every one of ``words``."""
        return any(all(word in line for word in words) for line in self.lines)

    def text(self, timeout: float = 10.0) -> str:
        """Everything written, once the pipe closed (the process ended) or ``timeout`` passed."""
        self._thread.join(timeout)
        return "".join(self.lines)


class Player:
    """``run.py play`` in a subprocess with its OSC and Myo ports, and a UDP socket to talk to it
    (a module may keep one for all its tests: it is stopped by ``stop``, not after each test)."""

    def __init__(self, checkpoint, patch: str, tmp_path, *extra: str):
        """``checkpoint`` None: the shipped model; ``extra``: more options for play."""
        self.osc, self.myo = free_udp_port(), free_udp_port()
        model = ["--model", str(checkpoint)] if checkpoint else []
        self.proc = _start([*model, "--patch", str(ROOT / "patches" / patch), "--no-audio", "--midi-out", "none",
                            "--midi-in", "none", "--quiet", "--osc-port", str(self.osc), "--myo-port", str(self.myo),
                            "--record", str(tmp_path / "take.mid"), "--tempo", "200", *extra], tmp_path)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)

        def answers() -> bool:  # /state answers as soon as the controllers listen; "status" joins once the performance is open
            assert self.proc.poll() is None, self.proc.stderr.read()
            return "status" in (self.state() or {})

        wait_for(answers, 60, "play to answer /state with its status")

    def send(self, data: bytes, port: int | None = None) -> None:
        self.sock.sendto(data, ("127.0.0.1", port or self.osc))

    def state(self, timeout: float = 0.5) -> dict | None:
        """Ask /state and decode the one reply (``bench.harness.osc.ask_state``); None when none
        came within ``timeout``."""
        return ask_state(self.sock, self.osc, timeout=timeout)

    def wait_for(self, condition, timeout: float = 10.0) -> dict:
        """/state, asked until ``condition(state)`` holds (``bench.harness.wait.wait_for``)."""
        last: list[dict] = []

        def matched() -> dict | None:
            state = self.state()
            if state is not None:
                last[:] = [state]
                return state if condition(state) else None
            return None

        return wait_for(matched, timeout, lambda: f"/state to match; last {last}", step=0.05)

    def counts(self, state: dict | None = None) -> dict:
        """What the controllers counted (``status.counts`` of /state: messages received and
        ignored, patch saves loaded and rejected), from ``state`` or a /state asked now."""
        state = state or self.wait_for(lambda s: "status" in s)
        return state["status"]["counts"]

    def stop(self) -> str:
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=30)
        self.sock.close()
        assert self.proc.returncode == 0, err
        return err


class WebPlayer(Player):
    """``play`` with its web page on ``host``; the page's printed address in ``url``."""

    def __init__(self, tmp_path, host: str = "127.0.0.1", *extra: str):
        self.web_port = free_tcp_port(host)
        super().__init__(None, "default.yaml", tmp_path, "--web", f"{host}:{self.web_port}", *extra)
        self.take = tmp_path / "take.mid"
        self.err = Lines(self.proc.stderr)
        line = wait_for(lambda: next((l for l in self.err.lines if l.startswith("web page: ")), None), 30, "the page's address")
        self.url = line.split()[2]

    def stop(self) -> str:
        self.proc.terminate()
        self.proc.wait(30)
        self.sock.close()
        err = self.err.text(5)
        assert self.proc.returncode == 0, err
        return err
