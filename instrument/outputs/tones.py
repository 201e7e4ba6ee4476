"""The synth's DSP: timbres, a bank of polyphonic tones, the master limiter.

One implementation for live and offline sound: ``ToneBank.block(frames)`` is called by the
audio callback and by the offline renderer alike. Everything is computed per block with numpy,
vectorised over tones x partials x frames; no Python runs per sample.

Each tone is additive: a few partials with their own amplitudes (and, for a plucked string,
their own decay rates). Its sound is a closed-form function of its *age* in samples (stream
sample minus onset sample), so a note-on, a note-off or a fade can start at any sample inside a
block without splitting the block: envelopes are products of factors that are each continuous
and start at 1 (release, fade) or at 0 (attack), so no event can make the output jump.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass

import numpy as np

NEVER = np.int64(2**62)  # a release or fade sample that never comes
TWO_PI = 2.0 * np.pi
SILENT = 1e-4  # -80 dB: a decayed tone below this (relative to its peak) is freed


@dataclass(frozen=True)
class Timbre:
    """The parameters of one sound. Times in seconds, pitch ratios in cents."""

    name: str
    partials: int
    attack_s: float  # raised-cosine rise: no click, however loud the note
    release_s: float  # fall after note-off
    decay_s: float | None  # pluck: fundamental's decay time constant at middle C; None: sustains
    partial_decay: float  # partial k decays (1 + partial_decay*(k-1)) times faster: bright attack
    rolloff: float  # partial k's amplitude ~ k**-rolloff at full velocity...
    rolloff_soft: float  # ...plus this much at the softest velocity: soft notes are darker
    pick: float  # plucking point along the string (0: none): notches partials like a real string
    inharmonicity: float  # stiff string: f_k = k f sqrt(1 + B k^2)
    detune_cents: float  # each note is detuned at random by up to this much: less mechanical
    vibrato_hz: float = 0.0
    vibrato_cents: float = 0.0
    vibrato_delay_s: float = 0.0  # vibrato fades in after this, over the same time again
    tremolo: float = 0.0  # amplitude wobble with the vibrato, as a bow's pressure varies
    gain: float = 0.25  # a single full-velocity tone's peak


TIMBRES: dict[str, Timbre] = {
    "pluck": Timbre(
        name="pluck", partials=12, attack_s=0.003, release_s=0.09, decay_s=0.9,
        partial_decay=0.7, rolloff=0.9, rolloff_soft=0.9, pick=0.14, inharmonicity=1e-4,
        detune_cents=3.0, gain=0.45,
    ),
    "bow": Timbre(
        name="bow", partials=10, attack_s=0.08, release_s=0.16, decay_s=None,
        partial_decay=0.0, rolloff=1.4, rolloff_soft=0.8, pick=0.0, inharmonicity=0.0,
        detune_cents=2.0, vibrato_hz=5.3, vibrato_cents=12.0, vibrato_delay_s=0.15, tremolo=0.06,
        gain=0.35,
    ),
}

STEAL_S = 0.020  # a stolen tone fades over 20 ms
PANIC_S = 0.010  # panic fades every tone over 10 ms


def timbre(name: str | Timbre) -> Timbre:
    """A timbre by name (``pluck``, ``bow``), or the one given."""
    if isinstance(name, Timbre):
        return name
    try:
        return TIMBRES[name]
    except KeyError:
        raise ValueError(f"unknown timbre {name!r}: choose one of {', '.join(TIMBRES)}") from None


def _rise(x: np.ndarray) -> np.ndarray:
    """0 -> 1 raised cosine of x clipped to [0, 1]: smooth at both ends (no click, no kink)."""
    x = np.clip(x, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * x)


class Limiter:
    """Master stage: a block peak limiter, then a soft clip that never passes ``ceiling``.

    The gain drops at once (ramped over the block, so no step) when a block would exceed the
    threshold and recovers slowly; the soft clip catches the start of a sudden burst, which the
    block-wise gain meets only by the block's end. Chords get quieter, never clipped.
    """

    def __init__(self, samplerate: float, threshold: float = 0.7, knee: float = 0.8, ceiling: float = 0.98,
                 recover_s: float = 0.3):
        self.threshold, self.knee, self.ceiling = threshold, knee, ceiling
        self.recover = 1.0 / (recover_s * samplerate)  # per sample
        self.gain = 1.0

    def process(self, x: np.ndarray) -> None:
        """Limit ``x`` (frames, channels) in place."""
        frames = x.shape[0]
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        target = min(1.0, self.threshold / peak) if peak > 0 else 1.0
        if target < self.gain:
            new = target
        else:
            new = self.gain + (target - self.gain) * (1.0 - np.exp(-frames * self.recover))
        if new != 1.0 or self.gain != 1.0:
            ramp = np.linspace(self.gain, new, frames + 1, dtype=np.float32)[1:]
            x *= ramp[:, None]
        self.gain = new
        k, room = self.knee, self.ceiling - self.knee
        over = np.abs(x) > k
        if over.any():  # above the knee, tanh bends the curve smoothly towards the ceiling
            y = x[over]
            x[over] = np.sign(y) * (k + room * np.tanh((np.abs(y) - k) / room))


class ToneBank:
    """Polyphonic tones on a stream of samples: notes in (as sample positions), blocks out.

    ``add`` queues a note; ``block`` starts the notes due in the block at their exact samples,
    synthesises every sounding tone and advances ``position`` (the stream sample of the next
    block's first frame). Not thread-safe: one thread (the audio callback) owns it.

    Polyphony: at most ``polyphony`` notes are held at once; a new note beyond that fades out the
    oldest held one over 20 ms (its slot keeps sounding the fade, so there are twice as many
    slots as held notes). A pitch struck again by the same voice of an ensemble ends the one it
    holds (as a MIDI port plays it: a drone's strike ends the strike before), and ``release``
    ends every note of a voice (the drone at its tune's end, a voice muted). Every voice plays
    this bank's one timbre.

    ``level``: the master level (linear, before the limiter), the live parameter ``gain``; any
    thread may set it, and the sound glides to it over the next block (no click).
    """

    def __init__(self, samplerate: float, timbre_: str | Timbre = "pluck", channels: int = 2,
                 polyphony: int = 16, gain: float = 1.0, seed: int = 0, limiter: bool = True, level: float = 1.0):
        if channels not in (1, 2):
            raise ValueError("channels must be 1 or 2")
        self.sr = float(samplerate)
        self.timbre = timbre(timbre_)
        self.channels = channels
        self.polyphony = polyphony
        self.gain = gain
        self.level = level
        self._level = level  # the level the last block ended at
        self.position = 0
        self.late = 0  # notes that arrived after their onset (started late or dropped)
        self.limiter = Limiter(self.sr) if limiter else None
        self._pending: list[tuple[int, int, int, int, int, int]] = []  # (on, seq, off, pitch, velocity, voice)
        self._seq = itertools.count()
        self._rng = np.random.default_rng(seed)
        t = self.timbre
        self._attack = max(1.0, t.attack_s * self.sr)
        self._release = max(1.0, t.release_s * self.sr)
        self._k = np.arange(1, t.partials + 1, dtype=np.float64)
        slots = 2 * polyphony
        k = t.partials
        self.active = np.zeros(slots, dtype=bool)
        self.onset = np.zeros(slots, dtype=np.int64)
        self.release_at = np.full(slots, NEVER, dtype=np.int64)
        self.fade_at = np.full(slots, NEVER, dtype=np.int64)
        self.fade_len = np.ones(slots, dtype=np.float64)
        self.omega = np.zeros((slots, k))  # rad per sample
        self.phase0 = np.zeros((slots, k))
        self.amp = np.zeros((slots, k), dtype=np.float32)
        self.rate = np.zeros((slots, k))  # decay per sample
        self.pan = np.zeros((slots, channels), dtype=np.float32)
        self.voice = np.zeros(slots, dtype=np.int64)  # the ensemble's voice each tone belongs to
        self.pitch = np.full(slots, -1, dtype=np.int64)
        self.vib_phase = np.zeros(slots)
        self.beta = np.zeros((slots, k), dtype=np.float32)  # vibrato as phase modulation index
        self._n = np.arange(1024, dtype=np.float64)
        self._work = np.empty(slots * k * 1024, dtype=np.float32)  # the partials of a block

    # -- events (sample positions on the stream) -------------------------------------------

    def add(self, on: int, off: int, pitch: int, velocity: int, voice: int = 1) -> None:
        """Queue a note from sample ``on`` to sample ``off``. A note whose onset has passed
        starts now (counted in ``late``); one that has ended too is dropped."""
        if on < self.position:
            self.late += 1
            if off <= self.position:
                return
            on = self.position
        heapq.heappush(self._pending, (int(on), next(self._seq), int(max(off, on + 1)), int(pitch), int(velocity), int(voice)))

    def release(self, voice: int, at: int, pitch: int | None = None) -> None:
        """Every note of ``voice`` held at sample ``at`` (or now, if it has passed) is released
        there; its notes queued to start at or after it are dropped. With ``pitch``: only its
        notes of that pitch held then."""
        at = max(int(at), self.position)
        if pitch is None:
            self._pending = [p for p in self._pending if p[5] != voice or p[0] < at]
            heapq.heapify(self._pending)
        else:  # queued and started by ``at``: ended there too
            self._pending = [p if p[5] != voice or p[3] != pitch or p[0] >= at else (*p[:2], min(p[2], at), *p[3:])
                             for p in self._pending]
            heapq.heapify(self._pending)
        chosen = self.active & (self.voice == voice) & (self.release_at > at)
        if pitch is not None:
            chosen &= self.pitch == pitch
        idx = np.flatnonzero(chosen)
        self.release_at[idx] = at

    def panic(self, at: int) -> None:
        """Drop every note not yet started; fade every sounding tone over 10 ms from ``at``
        (or from now, if ``at`` has passed). A tone already fading keeps its fade."""
        self._pending.clear()
        at = max(int(at), self.position)
        idx = np.flatnonzero(self.active & (self.fade_at == NEVER))
        self.fade_at[idx] = at
        self.fade_len[idx] = max(1.0, PANIC_S * self.sr)

    @property
    def sounding(self) -> int:
        """Tones producing sound (held, releasing or fading)."""
        return int(self.active.sum())

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- the block ---------------------------------------------------------------------------

    def block(self, frames: int) -> np.ndarray:
        """The next ``frames`` samples, float32 (frames, channels); advances ``position``."""
        start, end = self.position, self.position + frames
        while self._pending and self._pending[0][0] < end:
            on, _, off, pitch, velocity, voice = heapq.heappop(self._pending)
            self._start(on, off, pitch, velocity, voice)
        out = self._synthesise(start, frames)
        level = self.level
        if level != self._level:
            out *= np.linspace(self._level, level, frames + 1, dtype=np.float32)[1:, None]
            self._level = level
        elif level != 1.0:
            out *= np.float32(level)
        if self.limiter is not None:
            self.limiter.process(out)
        self._free(end)
        self.position = end
        return out

    def _start(self, on: int, off: int, pitch: int, velocity: int, voice: int = 1) -> None:
        same = np.flatnonzero(self.active & (self.voice == voice) & (self.pitch == pitch) & (self.release_at > on))
        self.release_at[same] = on  # struck again: the one it held ends
        held = np.flatnonzero(self.active & (self.release_at > on) & (self.fade_at == NEVER))
        if len(held) >= self.polyphony:
            oldest = held[np.argmin(self.onset[held])]
            self.fade_at[oldest] = on
            self.fade_len[oldest] = max(1.0, STEAL_S * self.sr)
        free = np.flatnonzero(~self.active)
        if len(free):
            slot = int(free[0])
        else:  # every slot is fading: reuse the one nearest its end (a rare, tiny cut)
            left = np.minimum(self.release_at + self._release, self.fade_at + self.fade_len) - on
            slot = int(np.argmin(left))
        self._tone(slot, on, off, pitch, velocity)
        self.voice[slot], self.pitch[slot] = voice, pitch

    def _tone(self, slot: int, on: int, off: int, pitch: int, velocity: int) -> None:
        """Set a slot's parameters for one note: pitch, loudness, brightness, pan."""
        t, k, sr = self.timbre, self._k, self.sr
        v = min(max(velocity, 1), 127) / 127.0
        detune = self._rng.uniform(-1.0, 1.0) * t.detune_cents
        f = 440.0 * 2.0 ** ((pitch - 69 + detune / 100.0) / 12.0)
        fk = k * f * np.sqrt(1.0 + t.inharmonicity * k * k)
        amp = k ** -(t.rolloff + t.rolloff_soft * (1.0 - v))
        if t.pick:
            amp *= np.abs(np.sin(np.pi * k * t.pick)) / np.sin(np.pi * t.pick)
        amp[fk > 0.45 * sr] = 0.0  # no partial above Nyquist: aliasing would sound as noise
        amp *= t.gain * self.gain * 10.0 ** (-24.0 * (1.0 - v) / 20.0) / amp.sum()  # -24 dB at v=0
        self.amp[slot] = amp
        self.omega[slot] = TWO_PI * fk / sr
        self.phase0[slot] = self._rng.uniform(0.0, TWO_PI, len(k))
        if t.decay_s:
            tau = t.decay_s * min(4.0, (261.63 / f) ** 0.5) * sr  # low strings ring longer
            self.rate[slot] = (1.0 + t.partial_decay * (k - 1.0)) / tau
        self.beta[slot] = k * f * (2.0 ** (t.vibrato_cents / 1200.0) - 1.0) / t.vibrato_hz if t.vibrato_hz else 0.0
        self.vib_phase[slot] = self._rng.uniform(0.0, TWO_PI)
        if self.channels == 2:  # low notes a little left, high a little right, constant power
            p = float(np.clip((pitch - 66) / 36.0, -0.5, 0.5)) * 0.5 + 0.5
            self.pan[slot] = (np.cos(p * np.pi / 2) * np.sqrt(2.0), np.sin(p * np.pi / 2) * np.sqrt(2.0))
        else:
            self.pan[slot] = 1.0
        self.onset[slot] = on
        self.release_at[slot] = off
        self.fade_at[slot] = NEVER
        self.fade_len[slot] = 1.0
        self.active[slot] = True

    def _synthesise(self, start: int, frames: int) -> np.ndarray:
        """Sum of the sounding tones over one block, before the limiter.

        Partials are sines of a phase that is exact in float64 at the block start and advanced
        in float32 within the block. A pluck's per-partial decay changes by at most a few
        percent over a block, so it is taken exactly at the block's ends and interpolated
        linearly between them: two small matrix products instead of an exp per partial and
        sample, and the values at block edges stay exact, so blocks join seamlessly.
        """
        idx = np.flatnonzero(self.active)
        if not len(idx):
            return np.zeros((frames, self.channels), dtype=np.float32)
        t_ = self.timbre
        v, k = len(idx), t_.partials
        if frames > len(self._n):
            self._n = np.arange(frames, dtype=np.float64)
        n = self._n[:frames]
        if self._work.size < v * k * frames:
            self._work = np.empty(v * k * frames, dtype=np.float32)
        phase = self._work[: v * k * frames].reshape(v, k, frames)
        t0 = (start - self.onset[idx]).astype(np.float64)  # age of the block's first frame
        age = t0[:, None] + n  # (V, N), negative before the onset
        env = np.ones((v, frames))
        rows = np.flatnonzero(t0 < self._attack)
        if len(rows):
            env[rows] = _rise(age[rows] / self._attack)
        end = start + frames
        for at, length in ((self.release_at[idx], self._release), (self.fade_at[idx], self.fade_len[idx])):
            rows = np.flatnonzero(at < end)
            if len(rows):
                x = (start - at[rows]).astype(np.float64)[:, None] + n
                ln = length if np.isscalar(length) else length[rows][:, None]
                env[rows] *= 1.0 - _rise(x / ln)
        omega = self.omega[idx]
        base = np.remainder(omega * t0[:, None] + self.phase0[idx], TWO_PI).astype(np.float32)
        np.multiply(omega.astype(np.float32)[:, :, None], n.astype(np.float32), out=phase)
        phase += base[:, :, None]
        if t_.vibrato_hz:
            w = TWO_PI * t_.vibrato_hz / self.sr
            delay = t_.vibrato_delay_s * self.sr
            lfo = np.sin(w * age + self.vib_phase[idx][:, None]) * _rise((age - delay) / max(delay, 1.0))
            phase += self.beta[idx][:, :, None] * lfo.astype(np.float32)[:, None, :]
            if t_.tremolo:
                env *= 1.0 + t_.tremolo * lfo
        np.sin(phase, out=phase)
        amp = self.amp[idx]
        if t_.decay_s:
            rate = self.rate[idx]
            # exponents capped at 60 (-520 dB): no float32 denormals, which are slow to multiply
            a0 = (amp * np.exp(-np.minimum(rate * np.maximum(t0, 0.0)[:, None], 60.0))).astype(np.float32)
            a1 = (amp * np.exp(-np.minimum(rate * np.maximum(t0 + frames, 0.0)[:, None], 60.0))).astype(np.float32)
            tone = np.matmul(a0[:, None, :], phase)[:, 0, :]
            slope = np.matmul((a1 - a0)[:, None, :], phase)[:, 0, :]
            tone += slope * (n / frames).astype(np.float32)
        else:
            tone = np.matmul(amp[:, None, :], phase)[:, 0, :]
        tone *= env.astype(np.float32)
        return np.ascontiguousarray(tone.T @ self.pan[idx])

    def _free(self, end: int) -> None:
        """Free the tones whose release or fade has finished, or that decayed to silence."""
        a = self.active
        done = (end - self.release_at >= self._release) | (end - self.fade_at >= self.fade_len)
        if self.timbre.decay_s:
            done |= np.exp(-self.rate[:, 0] * (end - self.onset)) < SILENT
        a &= ~done
