"""The fast step path: the whole LSTM step for B voices in one call to a small C kernel.

``fast_step.c`` (beside this file) is compiled at first use by ``instrument.native`` into a cache
directory keyed by a hash of the source and flags, and loaded with ctypes. Per step it gathers
layer 1's input rows (the one- or multi-hot input needs no product), runs one fused [W_ih | W_hh]
product per layer with the gate nonlinearities in the same pass, the softmax layer, and then draws
every voice's token from uniforms the stepper's own seeded generators supply. Nothing is allocated per step: the state
lives in buffers made once, which the readout exposes as torch views.

``threads=2`` lets a helper thread (spinning briefly between steps, then sleeping) take chunks of
unit groups; ``precision="bf16"`` stores the weights as bfloat16 (half the bytes to stream, products
in float32). When the kernel cannot be built (no compiler, no writable cache, a compiler error) or
this CPU lacks AVX2/FMA/F16C, :func:`load` returns None after a one-line warning through logging
saying why, and the stepper runs the torch path (``torch_step``), which is slower.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import subprocess
import threading
import weakref
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from instrument import native
from instrument.model.controls import Stimulation

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("fast_step.c")
ABI = 5  # the call structures' layout; the C file returns it from fs_abi_version()
MAXL = 8  # layers: sizes the per-layer pointer arrays of the C structures
MAX_VOCAB = 1024  # tokens: sizes the sampler's buffers
FLAGS = ["-O3", "-mavx2", "-mfma", "-mf16c", "-std=gnu11", "-fPIC", "-shared", "-pthread",
         f"-DFS_ABI={ABI}", f"-DFS_MAXL={MAXL}", f"-DFS_MAX_VOCAB={MAX_VOCAB}"]  # the limits, defined here only
PRECISIONS = {"float32": 0, "bf16": 1, "fp16": 2}
# Reduced-precision weights: the largest total-variation distance between the sampled distribution
# and float32's in one step from the same state (tests/test_fast_step.py checks it). Over a whole
# tune the state itself drifts at a rate that depends on the model (bench/step.py reports it).
TOLERANCE = {"bf16": 3e-3, "fp16": 5e-4}

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_tried = False
why_not: str | None = None  # why the kernel is not used, once load() has said so


def _cpu_ok() -> tuple[bool, str]:
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False, f"needs Linux on x86-64 (this is {platform.system()} {platform.machine()})"
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return False, "cannot read /proc/cpuinfo"
    missing = [f for f in ("avx2", "fma", "f16c") if f not in flags.split()]
    return (not missing), f"this CPU lacks {' and '.join(missing)}"


def _notice(reason: str) -> None:
    global why_not
    if why_not is None:
        why_not = reason
        log.warning("fast step unavailable (%s); the torch path runs instead, several times slower", reason)


def library_path() -> Path:
    """Where the kernel is cached (``native.library_path``)."""
    return native.library_path(SOURCE, FLAGS)


def load() -> ctypes.CDLL | None:
    """The compiled kernel (built on first use), or None after a one-line notice on stderr."""
    global _lib, _tried
    with _lock:
        if _tried:
            return _lib
        _tried = True
        if os.environ.get("FOLK_INSTRUMENT_NO_FAST"):
            _notice("FOLK_INSTRUMENT_NO_FAST is set")
            return None
        ok, why = _cpu_ok()
        if not ok:
            _notice(why)
            return None
        try:
            path = native.built(SOURCE, FLAGS)
            lib = ctypes.CDLL(str(path))
            if lib.fs_abi_version() != ABI:
                raise RuntimeError(f"{path.name} has another ABI version")
        except native.CompilerMissing as error:
            _notice(str(error))
            return None
        except OSError as error:
            _notice(f"cannot build or load it: {error.strerror or error} ({getattr(error, 'filename', '') or ''}); "
                    "make the cache writable or set FOLK_INSTRUMENT_CACHE")
            return None
        except (RuntimeError, subprocess.SubprocessError) as error:
            _notice(f"{type(error).__name__}: {str(error)[:160]}")
            return None
        lib.fs_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.fs_run.restype = ctypes.c_int
        _lib = lib
        return lib


def default_threads(offline: bool = False) -> int:
    """Cores the fast step uses unless told: $FOLK_INSTRUMENT_THREADS if set, else 2 for offline
    work and 1 live (where the timing thread and the synth need the other core; bench/step.py)."""
    value = os.environ.get("FOLK_INSTRUMENT_THREADS", "").strip()
    if value in ("1", "2"):
        return int(value)
    return 2 if offline else 1


def available() -> bool:
    return load() is not None


class _Net(ctypes.Structure):
    _fields_ = [
        ("layers", ctypes.c_int32), ("hp", ctypes.c_int32), ("vocab", ctypes.c_int32), ("voices", ctypes.c_int32),
        ("prec", ctypes.c_int32), ("kblock", ctypes.c_int32), ("keep_stride", ctypes.c_int32), ("pad1", ctypes.c_int32),
        ("gather", ctypes.c_void_p), ("bias", ctypes.c_void_p * MAXL), ("w", ctypes.c_void_p * MAXL),
        ("wout", ctypes.c_void_p), ("bout", ctypes.c_void_p),
        ("inp", ctypes.c_void_p * MAXL), ("h", ctypes.c_void_p * MAXL), ("c", ctypes.c_void_p * MAXL),
        ("xo", ctypes.c_void_p), ("logits", ctypes.c_void_p),
        ("keep_out", ctypes.c_void_p * MAXL), ("keep_sil", ctypes.c_void_p * MAXL), ("scratch", ctypes.c_void_p),
    ]


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


def _as_u8(mask: np.ndarray) -> np.ndarray:
    if mask.dtype in (np.bool_, np.uint8) and mask.flags.c_contiguous:
        return mask.view(np.uint8)
    return np.ascontiguousarray(mask != 0, dtype=np.uint8)


def to_bf16(a: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits (uint16), rounding to nearest even."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def from_bf16(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _reduce(w: np.ndarray, precision: str) -> np.ndarray:
    if precision == "bf16":
        return to_bf16(w)
    if precision == "fp16":
        if np.abs(w).max() >= 65504:
            raise ValueError("weights beyond the float16 range: use precision='bf16' or 'float32'")
        return np.ascontiguousarray(w.astype(np.float16).view(np.uint16))
    return w


class PackedWeights:
    """A model's weights in the kernel's layout (see fast_step.c), made once per model version."""

    def __init__(self, model, precision: str = "float32"):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, not {precision!r}")
        cfg = model.config
        H, V, L = cfg.hidden, cfg.vocab_size, cfg.layers
        if L > MAXL or V > MAX_VOCAB:
            raise ValueError(f"the fast step handles at most {MAXL} layers and {MAX_VOCAB} tokens")
        Hp = -(-H // 8) * 8
        G = Hp // 8
        NG = -(-V // 32)
        self.hidden, self.hp, self.vocab, self.layers, self.precision = H, Hp, V, L, precision
        f32 = lambda t: t.detach().to(torch.float32).cpu().numpy()  # noqa: E731

        def gate_rows(m: np.ndarray) -> np.ndarray:  # (4H, K) -> (4, Hp, K), padded units are zero
            out = np.zeros((4, Hp, m.shape[1]), dtype=np.float32)
            out[:, :H] = m.reshape(4, H, -1)
            return out

        def interleave(m4: np.ndarray) -> np.ndarray:  # (4, Hp, K) -> (G, K, 32): a group's i,f,g,o side by side
            K = m4.shape[2]
            return np.ascontiguousarray(m4.reshape(4, G, 8, K).transpose(1, 3, 0, 2).reshape(G, K, 32))

        self.w, self.bias, self.h0, self.c0 = [], [], [], []
        for l, layer in enumerate(model.layers):
            w_ih, w_hh = f32(layer.w_ih), f32(layer.w_hh)
            if l == 0:
                cat = np.zeros((4 * H, Hp), dtype=np.float32)
                cat[:, :H] = w_hh
                g = gate_rows(w_ih)  # (4, Hp, V)
                self.gather = np.ascontiguousarray(g.reshape(4, G, 8, V).transpose(3, 1, 0, 2).reshape(V, 4 * Hp))
            else:
                cat = np.zeros((4 * H, 2 * Hp), dtype=np.float32)
                cat[:, :H] = w_ih
                cat[:, Hp : Hp + H] = w_hh
            packed = interleave(gate_rows(cat))
            self.w.append(_reduce(packed, precision))
            self.bias.append(np.ascontiguousarray(interleave(gate_rows(f32(layer.bias)[:, None]))[:, 0, :].reshape(-1)))
            self.h0.append(np.pad(f32(layer.h0), (0, Hp - H)))
            self.c0.append(np.pad(f32(layer.c0), (0, Hp - H)))
        wout = np.zeros((NG * 32, Hp), dtype=np.float32)
        wout[:V, :H] = f32(model.out.weight)
        self.wout = np.ascontiguousarray(wout.reshape(NG, 32, Hp).transpose(0, 2, 1))
        self.bout = np.zeros(NG * 32, dtype=np.float32)
        self.bout[:V] = f32(model.out.bias)


_packed_cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_exact_cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _stamp(model) -> tuple:
    """Changes whenever a parameter of ``model`` is replaced or written to (torch versions)."""
    return tuple((p.data_ptr(), p._version) for p in model.parameters())

# "auto" streams fp16 weights up to this many voices: a step that few voices share is bound by
# the bytes it reads (half as many, about 1.8x faster here), a larger batch by its arithmetic.
AUTO_FP16_MAX_VOICES = 4


def fp16_exact(model) -> bool:
    """Whether every LSTM weight is a float16 value (true of a checkpoint stored in fp16, as the
    shipped model is): then fp16 weights give float32's results to the last bit."""
    stamp = _stamp(model)
    hit = _exact_cache.get(model)
    if hit is None or hit[0] != stamp:
        exact = True
        for layer in model.layers:
            for w in (layer.w_ih, layer.w_hh):
                t = w.detach().to(torch.float32)
                exact = exact and bool(torch.equal(t.to(torch.float16).to(torch.float32), t))
        hit = (stamp, exact)
        _exact_cache[model] = hit
    return hit[1]


def choose_precision(model, voices: int, precision: str) -> str:
    """``"auto"``: fp16 where it is exact and faster (few voices), else float32; others as given."""
    if precision != "auto":
        return precision
    return "fp16" if voices <= AUTO_FP16_MAX_VOICES and fp16_exact(model) else "float32"


def packed(model, precision: str = "float32") -> PackedWeights:
    """Packed weights of ``model``, re-packed only when a parameter changed since (torch versions)."""
    stamp = _stamp(model)
    per_model = _packed_cache.setdefault(model, {})
    hit = per_model.get(precision)
    if hit is None or hit[0] != stamp:
        hit = (stamp, PackedWeights(model, precision))
        per_model[precision] = hit
    return hit[1]


class _Call(ctypes.Structure):
    _fields_ = [
        ("active", ctypes.c_void_p), ("hot_tok", ctypes.c_void_p), ("hot_w", ctypes.c_void_p), ("nhot", ctypes.c_void_p),
        ("nact", ctypes.c_int32), ("maxhot", ctypes.c_int32), ("threads", ctypes.c_int32), ("sample", ctypes.c_int32),
        ("advance", ctypes.c_int32), ("pad", ctypes.c_int32),
        ("temp", ctypes.c_void_p), ("bias", ctypes.c_void_p), ("u", ctypes.c_void_p), ("allowed", ctypes.c_void_p),
        ("bias_stride", ctypes.c_int64), ("allowed_stride", ctypes.c_int64),
        ("sampling", ctypes.c_void_p), ("tokens", ctypes.c_void_p),
    ]


class FastNet:
    """State buffers for ``voices`` voices and the calls into the kernel.

    The stepper drives it like its reference torch net: ``reset``, ``advance`` (feed the pending
    tokens of some voices), ``step`` (feed every voice's token and sample the next ones), and the
    readout tensors ``h``, ``c``, ``logits``, ``sampling`` (views of the buffers).
    """

    def __init__(self, lib: ctypes.CDLL, weights: PackedWeights, voices: int, threads: int = 1, pc_rows=None):
        self.lib, self.wt, self.voices, self.threads = lib, weights, voices, threads
        self.pc_rows = np.asarray(pc_rows if pc_rows is not None else [], dtype=np.int32)
        B, Hp, H, V, L = voices, weights.hp, weights.hidden, weights.vocab, weights.layers
        self.inp = [np.zeros((B, Hp if l == 0 else 2 * Hp), dtype=np.float32) for l in range(L)]
        self.h_buf = [np.zeros((B, Hp), dtype=np.float32) for _ in range(L)]
        self.c_buf = [np.zeros((B, Hp), dtype=np.float32) for _ in range(L)]
        self.xo = np.zeros((B, Hp), dtype=np.float32)
        self.logits_buf = np.zeros((B, V), dtype=np.float32)
        self.sampling_buf = np.full((B, V), 1.0 / V, dtype=np.float32)
        self.scratch = np.zeros((2, B, 32), dtype=np.float32)
        self.h = [torch.from_numpy(a[:, :H]) for a in self.h_buf]
        self.c = [torch.from_numpy(a[:, :H]) for a in self.c_buf]
        self.logits = torch.from_numpy(self.logits_buf)
        self.sampling = torch.from_numpy(self.sampling_buf)
        n = self.net = _Net()
        n.layers, n.hp, n.vocab, n.voices, n.prec = L, Hp, V, B, PRECISIONS[weights.precision]
        n.kblock = 128  # k rows per L1-sized weight block when there are several voice pairs
        n.gather, n.wout, n.bout = _ptr(weights.gather), _ptr(weights.wout), _ptr(weights.bout)
        for l in range(L):
            n.bias[l], n.w[l] = _ptr(weights.bias[l]), _ptr(weights.w[l])
            n.inp[l], n.h[l], n.c[l] = _ptr(self.inp[l]), _ptr(self.h_buf[l]), _ptr(self.c_buf[l])
        n.xo, n.logits, n.scratch = _ptr(self.xo), _ptr(self.logits_buf), _ptr(self.scratch)
        self._net_ref = ctypes.byref(n)
        self._keep: list[np.ndarray] = []
        self._masks_set = None
        # per-call inputs: made once, pointed to by the call structure
        self._temp = np.ones(B, dtype=np.float64)
        self._u = np.zeros(B, dtype=np.float64)
        self._allowed = np.ones((B, V), dtype=np.uint8)
        self._tokens = np.zeros(B, dtype=np.int64)
        self._mask_ptrs: dict[int, tuple] = {}  # the guard's masks are a few shared arrays
        c = self.call = _Call()
        c.threads = threads
        c.temp, c.u, c.sampling, c.tokens = _ptr(self._temp), _ptr(self._u), _ptr(self.sampling_buf), _ptr(self._tokens)
        self._call_ref = ctypes.byref(c)
        self._set_maxhot(2)
        self.reset(None)

    def _set_maxhot(self, m: int) -> None:
        self.maxhot = m
        self.hot_tok = np.zeros((self.voices, m), dtype=np.int32)
        self.hot_w = np.ones((self.voices, m), dtype=np.float32)
        self.nhot = np.ones(self.voices, dtype=np.int32)
        self._plain_input = True  # hot_w[:, 0] == 1 and nhot == 1 for every voice
        c = self.call
        c.hot_tok, c.hot_w, c.nhot, c.maxhot = _ptr(self.hot_tok), _ptr(self.hot_w), _ptr(self.nhot), m

    # -- state -------------------------------------------------------------------------------
    def reset(self, voices: Sequence[int] | None) -> None:
        idx = slice(None) if voices is None else np.asarray(list(voices), dtype=np.int64)
        Hp = self.wt.hp
        for l in range(self.wt.layers):
            self.h_buf[l][idx] = self.wt.h0[l]
            self.c_buf[l][idx] = self.wt.c0[l]
            self.inp[l][idx, (0 if l == 0 else Hp) :] = self.wt.h0[l]
        if voices is None:
            self.logits_buf[:] = 0.0
            self.sampling_buf[:] = 1.0 / self.wt.vocab

    def _set_masks(self, masks) -> None:
        """Per layer (output keep, silence keep) from the stepper; None where the layer is whole.
        A mask shared by every voice is one row (stride 0); where any mask has a row per voice,
        every mask is given one row per voice (stride Hp), so the kernel reads row v for voice v."""
        per_voice = any(m is not None and np.ndim(m) == 2 for pair in masks for m in pair)
        keep = []
        for l, pair in enumerate(masks):
            for field, m in zip(("keep_out", "keep_sil"), pair):
                if m is None:
                    getattr(self.net, field)[l] = None
                else:
                    a = np.zeros((self.voices, self.wt.hp) if per_voice else self.wt.hp, dtype=np.float32)
                    a[..., : self.wt.hidden] = np.asarray(m, dtype=np.float32)
                    keep.append(a)
                    getattr(self.net, field)[l] = _ptr(a)
        self.net.keep_stride = self.wt.hp if per_voice else 0
        self._keep = keep
        self._masks_set = masks

    def _set_input(self, pending, sampled, stim, pcs) -> None:
        """Layer 0's input rows: the pending token (weighted when sampled), plus a stimulation's
        forced and random pitch-class tokens on the voices whose token was sampled. ``stim``: one
        Stimulation for every fed voice, or one each."""
        n = len(pending)
        if isinstance(stim, Stimulation):
            if stim.is_plain:
                self.hot_tok[:n, 0] = pending
                if not self._plain_input:
                    self.hot_w[:] = 1.0
                    self.nhot[:] = 1
                    self._plain_input = True
                return
            extra = sampled.any()
            hot = 1 + (len(stim.forced) + (pcs is not None) if extra else 0)
            if hot > self.maxhot:
                self._set_maxhot(hot)
            tok, w = self.hot_tok, self.hot_w
            tok[:n, 0] = pending
            w[:n, 0] = np.where(sampled, np.float32(stim.sampled_weight), np.float32(1.0))
            k = 1
            if extra:
                for token, weight in stim.forced:
                    tok[:n, k] = token
                    w[:n, k] = np.where(sampled, np.float32(weight), np.float32(0.0))
                    k += 1
                if pcs is not None:
                    tok[:n, k] = self.pc_rows[pcs]
                    w[:n, k] = np.where(sampled, np.float32(stim.random_pitch_class), np.float32(0.0))
                    k += 1
            self.nhot[:n] = k
            self._plain_input = False
            return
        hot = 1 + max(len(s.forced) + (s.random_pitch_class != 0) for s in stim)
        if hot > self.maxhot:
            self._set_maxhot(hot)
        tok, w = self.hot_tok, self.hot_w
        for i, s in enumerate(stim):  # each voice's tokens in the order the shared path gives them
            tok[i, 0] = pending[i]
            if not sampled[i]:
                w[i, 0], self.nhot[i] = 1.0, 1
                continue
            w[i, 0] = s.sampled_weight
            k = 1
            for token, weight in s.forced:
                tok[i, k], w[i, k] = token, weight
                k += 1
            if s.random_pitch_class:
                tok[i, k], w[i, k] = self.pc_rows[pcs[i]], s.random_pitch_class
                k += 1
            self.nhot[i] = k
        self._plain_input = False

    def _set_selection(self, sel: np.ndarray | None) -> None:
        c = self.call
        if sel is None:
            c.active, c.nact = None, self.voices
        else:
            self._sel = np.ascontiguousarray(sel, dtype=np.int32)
            c.active, c.nact = _ptr(self._sel), len(self._sel)

    # -- the step ------------------------------------------------------------------------------
    def advance(self, sel, pending, sampled, stim, pcs, masks) -> None:
        """Feed ``pending`` tokens of the ``sel`` voices (None: all) through the network."""
        if masks is not self._masks_set:
            self._set_masks(masks)
        self._set_input(pending, sampled, stim, pcs)
        self._set_selection(sel)
        self.call.advance, self.call.sample = 1, 0
        self._run()

    def step(self, sel, pending, sampled, stim, pcs, masks, temperature, bias, allowed_rows, rngs) -> np.ndarray:
        """Advance the ``sel`` voices (None: all), then draw each one's next token (fs_sample in the C
        file) from one uniform of its own generator; temperature 0 draws none and takes the argmax.
        ``temperature`` (scalar or one per selected voice), ``bias`` rows, ``allowed_rows``, ``rngs``
        are given per selected voice."""
        if masks is not self._masks_set:
            self._set_masks(masks)
        self._set_input(pending, sampled, stim, pcs)
        self._set_selection(sel)
        self._set_sampling(temperature, bias, allowed_rows, rngs)
        self.call.advance, self.call.sample = 1, 1
        self._run()
        return self._tokens[: self.call.nact].copy()

    def _run(self) -> None:
        if self.lib.fs_run(self._net_ref, self._call_ref) != 0:  # PackedWeights checked the sizes first
            raise RuntimeError(f"the fast step refused a network over {MAXL} layers or {MAX_VOCAB} tokens")

    def _set_sampling(self, temperature, bias, allowed_rows, rngs) -> None:
        c, n = self.call, len(rngs)
        temp, u = self._temp[:n], self._u[:n]
        temp[:] = temperature
        positive = temperature > 0 if isinstance(temperature, (int, float)) else bool((temp > 0).all())
        if positive and n > 8:
            u[:] = [r.random() for r in rngs]
        else:  # greedy voices draw nothing, as in the reference path
            for v, r in enumerate(rngs):
                if temp[v] > 0:
                    u[v] = r.random()
        first = allowed_rows[0]
        if all(row is first for row in allowed_rows):  # one mask for all voices (the usual case)
            c.allowed, c.allowed_stride = self._mask_ptr(first), 0
        else:
            for i, row in enumerate(allowed_rows):
                self._allowed[i] = row
            c.allowed, c.allowed_stride = _ptr(self._allowed), self.wt.vocab
        if bias is None:
            c.bias, c.bias_stride = None, 0
        else:
            bias = np.asarray(bias)
            if bias.ndim == 1:
                self._bias, c.bias_stride = np.ascontiguousarray(bias, dtype=np.float64), 0
            else:
                self._bias = np.ascontiguousarray(np.broadcast_to(bias, (n, self.wt.vocab)), dtype=np.float64)
                c.bias_stride = self.wt.vocab
            if self._bias.shape[-1] != self.wt.vocab:
                raise ValueError(f"logit_bias must have {self.wt.vocab} entries per voice")
            c.bias = _ptr(self._bias)
        c.sample = 1

    def _mask_ptr(self, mask: np.ndarray) -> int:
        hit = self._mask_ptrs.get(id(mask))
        if hit is None or hit[0] is not mask:
            u8 = _as_u8(mask)
            if len(self._mask_ptrs) > 64:
                self._mask_ptrs.clear()
            hit = self._mask_ptrs[id(mask)] = (mask, u8, _ptr(u8))
        return hit[2]
