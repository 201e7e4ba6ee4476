"""Gesture input: the Myo Mapper OSC stream (orientation, EMG, poses) through the patch.

Myo Mapper (v3) sends ``/myoN/orientation/scaled`` (yaw, pitch, roll 0..1),
``/myoN/emg/scaled/abs`` (8 rectified channels 0..1), ``/myoN/emg/scaled/abs/mav`` and
``/myoN/pose`` (rest, fist, waveIn, waveOut, fingersSpread, doubleTap), among others. Raw EMG
flickers from sample to sample, so its mean absolute value over the 8 channels is smoothed by a
one-pole filter (``myo: emg_smoothing_ms`` in the patch) into an intensity 0..1: the patch's
source ``myo: emg`` (``emg.1``..``emg.8`` for single channels, smoothed alike). Poses act
when they change (a held fist is one press).
"""

from __future__ import annotations

import math
import re
import time
from typing import Callable

from controllers.router import Router
from controllers.osc import OscListener
from controllers.report import Reporter
from instrument.live.params import Parameters

DEFAULT_PORT = 5432
ADDRESS = re.compile(r"^/myo(\d+)/(.+)$")
ORIENTATION = ("yaw", "pitch", "roll")
KNOWN_UNUSED = {"orientation/raw", "orientation/quaternion", "acceleration/raw", "acceleration/scaled",
                "gyro/raw", "gyro/scaled", "emg/scaled/abs/mav/mavg", "emg/raw", "emg/scaled"}


class EmgEnvelope:
    """One-pole smoothing of the EMG: ``value`` follows the input with time constant ``tau_s``,
    whatever the message rate (the step is from the arrival times)."""

    def __init__(self, tau_s: float):
        self.tau_s = tau_s
        self.value: float | None = None
        self._t: float | None = None

    def update(self, x: float, now: float) -> float:
        if self.value is None or self._t is None or self.tau_s <= 0:
            self.value = x
        else:
            dt = max(0.0, now - self._t)
            self.value += (x - self.value) * (1.0 - math.exp(-dt / self.tau_s))
        self._t = now
        return self.value


class MyoInput:
    """Listens for Myo Mapper on ``host:port`` and routes orientation, EMG and poses."""

    def __init__(self, params: Parameters, router: Router, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 reporter: Reporter | None = None, clock: Callable[[], float] = time.monotonic):
        self.params, self.router, self.clock = params, router, clock
        self.reporter = reporter or Reporter("Myo")
        self.pose = "none"
        self.intensity = 0.0
        self._envelopes: dict[str, EmgEnvelope] = {}
        self._abs_seen = False  # per-channel EMG arrives: ignore the ready-made mav
        self.listener = OscListener(self.handle, host, port, self.reporter, flag="--myo-port", name="myo")
        self.host, self.port = self.listener.host, self.listener.port

    def status(self) -> str:
        return f"Myo {self.host}:{self.port} {self.reporter.counts()}, pose {self.pose}, EMG {self.intensity:.2f}"

    def close(self) -> None:
        self.listener.close()

    def handle(self, address: str, args: list, sender: tuple = ("", 0)) -> None:
        """One Myo Mapper message (the listener's handler; public for feeding from elsewhere)."""
        match = ADDRESS.match(address)
        if match is None:
            self.reporter.ignore(f"not a Myo Mapper address: {address}")
            return
        armband = self.router.patch.myo.armband
        if armband is not None and int(match.group(1)) != armband:
            return
        what = match.group(2)
        if what == "orientation/scaled":
            values = self._numbers(address, args, 3)
            if values:
                for name, value in zip(ORIENTATION, values):
                    self.router.route(("myo", name), value, f"Myo {name}", self.reporter)
        elif what == "emg/scaled/abs":
            values = self._numbers(address, args, 8)
            if values:
                self._abs_seen = True
                now = self.clock()
                for i, value in enumerate(values, 1):
                    name = f"emg.{i}"
                    level = self._envelope(name).update(abs(value), now)
                    self.router.route(("myo", name), level, f"Myo {name}", self.reporter)
                self._emg(sum(abs(v) for v in values) / len(values), now)
        elif what == "emg/scaled/abs/mav":
            values = self._numbers(address, args, 1)
            if values and not self._abs_seen:
                self._emg(abs(values[0]), self.clock())
        elif what == "pose":
            if len(args) != 1 or not isinstance(args[0], str):
                self.reporter.ignore(f"{address} takes a pose name, not {args!r}")
                return
            if args[0] != self.pose:
                self.pose = args[0]
                if not self.router.route(("pose", self.pose), None, f"Myo pose {self.pose}", self.reporter):
                    self.reporter.did(f"pose {self.pose}", key="pose")
        elif what not in KNOWN_UNUSED:
            self.reporter.ignore(f"unknown Myo Mapper address {address}")

    def _emg(self, mav: float, now: float) -> None:
        self.intensity = min(max(self._envelope("emg").update(mav, now), 0.0), 1.0)
        self.router.route(("myo", "emg"), self.intensity, "Myo EMG", self.reporter)

    def _envelope(self, name: str) -> EmgEnvelope:
        tau = self.router.patch.myo.emg_smoothing_ms / 1000.0
        envelope = self._envelopes.get(name)
        if envelope is None:
            envelope = self._envelopes[name] = EmgEnvelope(tau)
        envelope.tau_s = tau  # a reloaded patch may change it
        return envelope

    def _numbers(self, address: str, args: list, count: int) -> list[float] | None:
        if len(args) != count or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
            self.reporter.ignore(f"{address} takes {count} numbers, not {args!r}")
            return None
        values = [float(a) for a in args]
        if not all(math.isfinite(v) for v in values):
            self.reporter.ignore(f"{address}: not finite: {args!r}")
            return None
        return values
