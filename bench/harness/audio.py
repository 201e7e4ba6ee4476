"""An independent JACK audio recorder (the JACK-Client package), onset detection, and the check of
a run's xruns against a bare client's, for tests and bench/audio.py."""

from __future__ import annotations

import math
import time
from typing import Sequence

import numpy as np

from instrument.timing import clock


class JackRecorder:
    """A JACK client of its own that records two input ports and counts the server's xruns.

    Each block keeps the clock time of its cycle's start (``clock()`` at the callback minus
    JACK's frames since the cycle started) and JACK's frame counter, so every recorded frame
    can be placed on ``clock()``. ``record=False``: a bare client that only counts xruns.
    """

    def __init__(self, name: str, record: bool = True, server: str | None = None):
        import jack

        self.client = jack.Client(name, no_start_server=True, servername=server)
        self.sr = self.client.samplerate
        self.xruns = 0
        self.xrun_times: list[float] = []  # on clock()
        self.blocks: list[tuple[float, int, np.ndarray]] = []  # (cycle start on clock, frame, (frames, 2))
        self.ports = [self.client.inports.register(f"in_{i}") for i in (1, 2)] if record else []
        self.client.set_xrun_callback(self._xrun)  # called on libjack's notification thread, not in the cycle
        if record:  # a bare client runs no Python in the server's cycle, so it cannot make it late
            self.client.set_process_callback(self._process)
        self.client.activate()
        self.activated = clock()  # its joining changed the server's graph

    def _xrun(self, delay_us: float) -> None:
        self.xruns += 1
        self.xrun_times.append(clock())

    def _process(self, frames: int) -> None:
        start = clock() - self.client.frames_since_cycle_start / self.sr
        data = np.stack([p.get_array() for p in self.ports], axis=1).copy()
        self.blocks.append((start, self.client.last_frame_time, data))

    def connect_from(self, client_pattern: str, timeout: float = 20.0) -> list[str]:
        """Connect the first two audio output ports of a client as soon as they exist."""
        import jack

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            outs = self.client.get_ports(client_pattern, is_audio=True, is_output=True)
            if len(outs) >= 2:
                try:
                    for out, inp in zip(outs[:2], self.ports):
                        if inp.name not in [c.name for c in self.client.get_all_connections(out)]:
                            self.client.connect(out, inp)
                    return [p.name for p in outs[:2]]
                except jack.JackError:  # the client is still activating its ports: again
                    pass
            time.sleep(0.005)
        raise TimeoutError(f"no audio ports of {client_pattern!r} appeared in {timeout:g} s")

    def _origins(self) -> tuple[list, np.ndarray]:
        """The blocks and each one's origin (where frame 0 would lie on ``clock()``): the earliest
        that the block and its neighbours within 10 ms imply, since a cycle's measured start is late
        by the callback's wake-up, never early."""
        blocks = list(self.blocks)
        frame = np.array([f for _, f, _ in blocks], dtype=np.int64)
        origin = np.array([t for t, _, _ in blocks]) - frame / self.sr
        k = max(1, int(0.01 * self.sr / max(1, len(blocks[0][2]))))  # blocks within 10 ms either side
        padded = np.concatenate([np.full(k, np.inf), origin, np.full(k, np.inf)])
        return blocks, np.lib.stride_tricks.sliding_window_view(padded, 2 * k + 1).min(axis=1)

    def audio(self) -> tuple[np.ndarray, np.ndarray]:
        """The recording (frames, 2) and each frame's time on ``clock()``; the dummy server loses
        time now and then, and each block is placed by its own origin (``_origins``)."""
        blocks, origin = self._origins()
        x = np.concatenate([b for _, _, b in blocks])
        t = np.concatenate([o + (f + np.arange(len(b))) / self.sr for o, (_, f, b) in zip(origin, blocks)])
        return x, t

    def origins(self) -> tuple[np.ndarray, np.ndarray]:
        """Each block's cycle start and origin (where frame 0 lies), on ``clock()``. The origin moves
        later when the server loses time (a cycle that ran late and was never made up), which
        no client may have missed a cycle in: a stream placed by an estimate of it (FluidSynth's
        lead) is off by as much until the estimate follows."""
        blocks, origin = self._origins()
        return np.array([b[0] for b in blocks]), origin

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def stalls(xrun_times: Sequence[float], gap_s: float = 0.1) -> int:
    """Missed-cycle events: xruns less than ``gap_s`` apart are one stall of the server (a busy
    machine's stall comes as a burst of two or three)."""
    count, last = 0, -math.inf
    for t in sorted(xrun_times):
        if t - last > gap_s:
            count += 1
        last = t
    return count


def xrun_problem(during: Sequence[float], during_s: float, alone: Sequence[float], alone_s: float,
                 p: float = 0.001) -> str | None:
    """Why a run's xruns (their times, over ``during_s``) are more than the same server gave a bare
    client alone (over ``alone_s``, before and after the run), or None. Counted as stalls; if the
    run adds none, its share of all stalls is binomial with its share of the time, and a share
    this large has a probability under ``p``: the run made the server miss cycles."""
    k, n = stalls(during), stalls(during) + stalls(alone)
    q = during_s / (during_s + alone_s)
    tail = sum(math.comb(n, i) * q ** i * (1 - q) ** (n - i) for i in range(k, n + 1))
    if tail >= p:
        return None
    return (f"{k} stalls ({len(during)} xruns) in {during_s:.1f} s of the run, against {n - k} "
            f"({len(alone)} xruns) in {alone_s:.1f} s of a bare client alone (chance {tail:.1g})")


def onsets(x: np.ndarray, sr: float, hop_s: float = 0.001, window: int = 1024, threshold: float = 0.1) -> np.ndarray:
    """Note onsets (seconds from the first sample): peaks of the spectral flux (the rise of
    every frequency's magnitude from one 1 ms hop to the next), above ``threshold`` times the
    largest peak. The flux of a frame is placed at the frame's centre."""
    mono = x.mean(axis=1) if x.ndim == 2 else x
    hop = max(1, int(round(hop_s * sr)))
    frames = 1 + (len(mono) - window) // hop
    if frames < 3:
        return np.zeros(0)
    idx = np.arange(window)[None, :] + hop * np.arange(frames)[:, None]
    spec = np.abs(np.fft.rfft(mono[idx] * np.hanning(window), axis=1))
    flux = np.maximum(np.diff(np.log1p(100 * spec), axis=0), 0).sum(axis=1)
    limit = threshold * flux.max()
    peaks = [i for i in range(1, len(flux) - 1)
             if flux[i] >= limit and flux[i] >= flux[i - 1] and flux[i] > flux[i + 1]
             and flux[i] == flux[max(0, i - 20): i + 21].max()]  # one onset per 20 ms
    return (np.array(peaks, dtype=float) + 1) * hop / sr + window / 2 / sr


def envelope(x: np.ndarray, sr: float, hop_s: float = 0.00025) -> np.ndarray:
    """Peak level of the mono mix in ``hop_s`` frames, in dB (floor -100): what onsets are matched on."""
    mono = x.mean(axis=1) if x.ndim == 2 else x
    hop = max(1, int(round(hop_s * sr)))
    n = len(mono) // hop
    return 20 * np.log10(np.abs(mono[: n * hop]).reshape(n, hop).max(axis=1) + 1e-5)


def note_lag(live: np.ndarray, live_t0: float, ref: np.ndarray, on: float, expected: float, hop_s: float = 0.00025,
             search_s: float = 0.03, before_s: float = 0.01, after_s: float = 0.04) -> float | None:
    """When a note sounds in a live recording, found by its rendered reference: the envelope of the
    reference around the note's onset ``on`` (seconds into the reference) is slid over the live
    envelope within ``search_s`` of ``expected`` (seconds on the live clock, which starts at
    ``live_t0``); returns the best-matching time, or None when the stretch is not in the recording."""
    a, b = int((on - before_s) / hop_s), int((on + after_s) / hop_s)
    if a < 0 or b > len(ref):
        return None
    template = ref[a:b] - ref[a:b].mean()
    centre = int((expected - before_s - live_t0) / hop_s)
    span = int(search_s / hop_s)
    if centre - span < 0 or centre + span + len(template) > len(live):
        return None
    scores = []
    for k in range(centre - span, centre + span + 1):
        window = live[k: k + len(template)]
        window = window - window.mean()
        scores.append(float(template @ window) / (np.linalg.norm(template) * np.linalg.norm(window) + 1e-9))
    best = int(np.argmax(scores))
    return live_t0 + (centre - span + best) * hop_s + before_s
