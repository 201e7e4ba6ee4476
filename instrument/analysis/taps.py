"""Live taps: per-step activity summaries for the live view and OSC, cheap for the model thread.

The engine's model thread calls the tap right after each ``stepper.step()``::

    tap = ActivityTap(layers=model.config.layers, hidden=model.config.hidden, every=4, max_rate=30)
    token = stepper.step()
    tap(stepper.readout, token)          # copies one voice's h into a ring; summarises when due

Every call copies one voice's h of each layer into a preallocated ring buffer (the running
window), and, when due (every ``every``-th call and at most ``max_rate`` times a second), builds an
``Activity`` summary: per layer the mean |h|, the ``top_k`` most active units with their values and
the bar-band share of the running window; the entropy of the output distribution; the token. The
summary goes into a single-slot mailbox (``tap.latest``: the live view polls it) and into the deque
of every subscriber (``tap.subscribe()``: e.g. the OSC publisher thread). Deques have a fixed
length and drop the oldest entry when nobody reads: the caller never waits on a lock, never
allocates more than the summary, and never does I/O.

``OscPublisher`` runs in its own thread, drains its deque and sends, per summary::

    /activity/step i                 the tap's step count
    /activity/token s                the token just sampled
    /activity/entropy f              entropy of the model's own distribution (nats)
    /activity/layer/<L>/mean f       mean |h| of layer L (1-based)
    /activity/layer/<L>/top i f ...  the top-k units of layer L and their h, most active first
    /activity/layer/<L>/bar f        layer L's power at the bar period (8.7-9.3 steps) over the
                                     running window; 1 = a pure bar-period oscillation, 0 = none
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from instrument.model import vocab
from instrument.analysis.spectra import BAR_BAND, band_weights, frequencies, make_window

OSC_PREFIX = "/activity"


@dataclass(frozen=True, slots=True)
class LayerActivity:
    layer: int  # 1-based
    mean_abs: float
    top_units: tuple[int, ...]
    top_values: tuple[float, ...]
    bar_band: float  # bar-period power of the running window: 1 = a pure bar-period oscillation, 0 = none (see ActivityTap)


@dataclass(frozen=True, slots=True)
class Activity:
    """One decimated summary of the network's activity at a step."""

    step: int  # tap calls so far (model steps seen)
    time: float  # time.perf_counter() when it was taken
    token: str
    entropy: float  # nats, of softmax(logits) of the tapped voice
    layers: tuple[LayerActivity, ...]
    units: bytes = b""  # with ActivityTap(units=True): |h| of every unit, layer after layer, 0..255 (a heatmap's column)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ActivityTap:
    """Called by the model thread after each step; see the module docstring.

    ``every``: summarise every k-th call; ``max_rate``: and at most this many times a second
    (None: no limit); ``window``: steps of the running window for the bar band (at least 2 bar
    periods; 36 = four 9-step bars); ``voice``: which voice of a batch to tap.

    ``bar_band`` of a layer is the share of its units' power (each unit's window mean removed,
    Hann window, summed over units) at periods in ``band``, divided by the share a pure
    oscillation at the band's centre gets (``bar_reference``): a 36-step window's main lobe is
    far wider than the 8.7-9.3 band, so the raw share of even a perfect bar-period tone is small.
    Offline, ``spectra.band_share`` of the same window gives ``bar_band * bar_reference``.
    """

    def __init__(
        self,
        layers: int,
        hidden: int,
        every: int = 4,
        max_rate: float | None = 30.0,
        top_k: int = 8,
        window: int = 36,
        band: Sequence[float] = BAR_BAND,
        voice: int = 0,
        nfft: int = 256,
        clock: Callable[[], float] = time.perf_counter,
        units: bool = False,
    ):
        if every < 1 or top_k < 1 or window < 4 or nfft < window:
            raise ValueError("every >= 1, top_k >= 1, window >= 4 and nfft >= window")
        self.layers, self.hidden, self.every, self.voice = layers, hidden, every, voice
        self.units = units  # also keep every unit's |h| in each summary (the web page's heatmap)
        self.top_k = min(top_k, hidden)
        self.min_interval = 0.0 if not max_rate else 1.0 / max_rate
        self.window = window
        self.clock = clock
        self.latest: Activity | None = None  # the single-slot mailbox
        self.calls = 0
        self.published = 0
        self._queues: tuple[deque, ...] = ()
        self._ring = np.zeros((layers, window, hidden), dtype=np.float32)
        self._pos = 0
        self._since = 0
        self._last_time = -np.inf
        # Band power of the windowed, mean-removed window by a few DFT bins of an nfft-point grid,
        # with one matrix per ring position so that the ring is never reordered. Rows: the bins'
        # cosine and sine parts (windowed), then sum(w^2 x) and the mean; ``_w2`` gives sum(w^2 x^2).
        lo, hi = sorted(band)
        inside = band_weights(frequencies(nfft), band)  # edge bins count in part, as offline
        k = np.flatnonzero(inside)
        if inside.sum() < 1.0:
            raise ValueError(f"the band {tuple(band)} spans less than one bin of an {nfft}-point grid")
        scale = np.sqrt(inside[k])[:, None]
        w = make_window("hann", window).astype(np.float64)
        n = np.arange(window)
        mats, w2s = [], []
        for pos in range(window):
            age = (n - pos) % window  # ring slot n holds the sample at time ``age`` of the window (0 = oldest)
            phase = 2 * np.pi * np.outer(k, age) / nfft
            wa = w[age]
            bins = np.concatenate([np.cos(phase) * wa * scale, np.sin(phase) * wa * scale])
            bins -= bins.sum(axis=1, keepdims=True) / window  # B (x - mean) = (B - B 1 1'/W) x: the mean is removed for free
            rows = [bins, (wa**2)[None], np.full((1, window), 1.0 / window)]
            mats.append(np.concatenate(rows).astype(np.float32))
            w2s.append((wa**2).astype(np.float32))
        self._mats = np.stack(mats)  # (window, 2 * bins + 2, window)
        self._w2 = np.stack(w2s)  # (window, window)
        self._bins = 2 * len(k)
        self._w2sum = float((w**2).sum())
        self._nfft = nfft
        self._energy = np.zeros((layers, window), dtype=np.float32)  # sum of h^2 over units, per step
        self._rows = np.arange(layers)[:, None]
        # What a pure oscillation at the band's centre scores (the window's main lobe is wider than
        # the band): the live value is divided by it, so 1 means "all at the bar period".
        f0 = 0.5 * (1.0 / lo + 1.0 / hi)
        shares = []
        for phi in np.linspace(0, np.pi, 8, endpoint=False):
            x = np.cos(2 * np.pi * f0 * n + phi)
            x = x - x.mean()
            coeffs = self._mats[0][: self._bins] @ x
            shares.append(2.0 * float(coeffs @ coeffs) / (float((w**2) @ (x * x)) * nfft))
        self.bar_reference = float(np.mean(shares))

    # -- the model thread --------------------------------------------------------------------
    def __call__(self, readout, token: Any = None) -> Activity | None:
        """Record one step; return the summary when one was published (else None)."""
        pos = self._pos
        v = self.voice
        ring = self._ring
        energy = self._energy
        for layer, h in enumerate(readout.h):
            row = h.numpy()[v]
            ring[layer, pos] = row
            energy[layer, pos] = row @ row
        self._pos = (pos + 1) % self.window
        self.calls += 1
        self._since += 1
        if self._since < self.every:
            return None
        now = self.clock()
        if now - self._last_time < self.min_interval:
            return None
        self._since = 0
        self._last_time = now
        activity = self._summarise(readout, token, now)
        self.latest = activity
        for queue in self._queues:
            queue.append(activity)
        self.published += 1
        return activity

    def _summarise(self, readout, token: Any, now: float) -> Activity:
        v = self.voice
        logits = readout.logits.numpy()[v]
        z = logits - logits.max()
        e = np.exp(z)
        total = float(e.sum())
        entropy = float(np.log(total) - float(e @ z) / total)  # -sum p log p of p = e / total
        current = self._ring[:, self._pos - 1]  # (layers, hidden): the step just recorded
        mag = np.abs(current)
        means = (mag.sum(axis=1) / self.hidden).tolist()
        top = torch.topk(torch.from_numpy(mag), self.top_k, dim=1).indices.numpy()  # most active first
        values = current[self._rows, top].tolist()
        top = top.tolist()
        bars = [0.0] * self.layers
        if self.calls >= self.window:
            start = self._pos  # the oldest slot
            b = self._bins
            m = np.matmul(self._mats[start], self._ring)  # (layers, bins + 2, hidden)
            band = 2.0 * np.einsum("lbh,lbh->l", m[:, :b], m[:, :b])  # DFT bins of the mean-removed window
            mean, s1 = m[:, b + 1], m[:, b]  # mean and sum(w^2 x)
            s2 = self._energy @ self._w2[start]  # sum over units of sum(w^2 x^2), (layers,)
            cross = np.einsum("lh,lh->l", mean, s1)
            square = np.einsum("lh,lh->l", mean, mean)
            energy = (s2 - 2.0 * cross + self._w2sum * square) * self._nfft  # window energy of x - mean
            ref = self.bar_reference
            bars = [float(bd / en / ref) if en > 1e-12 else 0.0 for bd, en in zip(band.tolist(), energy.tolist())]
        layers = tuple(
            LayerActivity(layer + 1, means[layer], tuple(top[layer]), tuple(values[layer]), bars[layer])
            for layer in range(self.layers)
        )
        column = (np.minimum(mag, 1.0) * 255.0).astype(np.uint8).tobytes() if self.units else b""  # |h| < 1 in an LSTM
        return Activity(self.calls, now, _token_text(token, v), entropy, layers, column)

    # -- consumers ---------------------------------------------------------------------------
    def subscribe(self, maxlen: int = 256) -> deque:
        """A deque that receives every published summary (oldest dropped when full)."""
        queue: deque = deque(maxlen=maxlen)
        self._queues = self._queues + (queue,)  # copy-on-write: the model thread iterates a tuple
        return queue

    def unsubscribe(self, queue: deque) -> None:
        self._queues = tuple(q for q in self._queues if q is not queue)


def _token_text(token: Any, voice: int) -> str:
    if token is None:
        return ""
    if isinstance(token, str):
        return token
    if isinstance(token, np.ndarray) or isinstance(token, (list, tuple)):
        token = token[voice] if np.ndim(token) else token
    return vocab.TOKENS[int(token)]


# -- OSC -----------------------------------------------------------------------------------
def osc_messages(activity: Activity, prefix: str = OSC_PREFIX) -> list[tuple[str, list]]:
    """The OSC messages (address, arguments) of one summary; see the module docstring."""
    messages: list[tuple[str, list]] = [
        (f"{prefix}/step", [int(activity.step)]),
        (f"{prefix}/token", [activity.token]),
        (f"{prefix}/entropy", [float(activity.entropy)]),
    ]
    for la in activity.layers:
        top: list = []
        for unit, value in zip(la.top_units, la.top_values):
            top += [int(unit), float(value)]
        messages.append((f"{prefix}/layer/{la.layer}/mean", [float(la.mean_abs)]))
        messages.append((f"{prefix}/layer/{la.layer}/top", top))
        messages.append((f"{prefix}/layer/{la.layer}/bar", [float(la.bar_band)]))
    return messages


class OscPublisher:
    """Sends a tap's summaries as OSC over UDP from its own (daemon) thread.

    ``client`` is anything with ``send_message(address, args)`` (default
    ``pythonosc.udp_client.SimpleUDPClient(host, port)``). The thread polls its deque every
    ``poll`` seconds, so the model thread never has to wake it.
    """

    def __init__(self, tap: ActivityTap, host: str = "127.0.0.1", port: int = 9001, client=None,
                 poll: float = 0.01, prefix: str = OSC_PREFIX, maxlen: int = 64):
        if client is None:
            from pythonosc.udp_client import SimpleUDPClient

            client = SimpleUDPClient(host, port)
        self.tap, self.client, self.poll, self.prefix = tap, client, poll, prefix
        self.queue = tap.subscribe(maxlen)
        self.sent = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="osc-activity", daemon=True)

    def start(self) -> "OscPublisher":
        self._thread.start()
        return self

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self.tap.unsubscribe(self.queue)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                activity = self.queue.popleft()
            except IndexError:
                self._stop.wait(self.poll)
                continue
            for address, args in osc_messages(activity, self.prefix):
                try:
                    self.client.send_message(address, args)
                    self.sent += 1
                except OSError:  # nobody listening, network down: the music plays on
                    self.errors += 1


# -- cost ----------------------------------------------------------------------------------
def measure_cost(model, steps: int = 2000, seed: int = 0, **tap_options) -> dict[str, float]:
    """Time the tap in a model-thread loop (one voice): per-call microseconds (median, p99, max),
    the same for the calls that published, and the stepper's own step time for comparison."""
    from instrument.model.stepper import Stepper

    stepper = Stepper(model, voices=1, seed=seed)
    tap = ActivityTap(model.config.layers, model.config.hidden, **tap_options)
    tap.subscribe()  # a consumer that never reads: the deque just drops the oldest
    stepper.force([vocab.START, "M:4/4", "K:Cmaj"])
    tap_ns, published_ns, step_ns = [], [], []
    end = vocab.INDEX[vocab.END]
    for _ in range(steps):
        t0 = time.perf_counter_ns()
        token = stepper.step()
        t1 = time.perf_counter_ns()
        out = tap(stepper.readout, token)
        t2 = time.perf_counter_ns()
        step_ns.append(t1 - t0)
        tap_ns.append(t2 - t1)
        if out is not None:
            published_ns.append(t2 - t1)
        if int(token[0]) == end:
            stepper.reset()
            stepper.force([vocab.START, "M:4/4", "K:Cmaj"])
    us = lambda v, q: float(np.percentile(np.array(v) / 1000.0, q)) if v else float("nan")  # noqa: E731
    return {
        "steps": steps, "published": tap.published, "every": tap.every,
        "tap_median_us": us(tap_ns, 50), "tap_p99_us": us(tap_ns, 99), "tap_max_us": us(tap_ns, 100),
        "publish_median_us": us(published_ns, 50), "publish_p99_us": us(published_ns, 99),
        "step_median_us": us(step_ns, 50), "step_p99_us": us(step_ns, 99),
    }
