"""The folk-rnn v2 equations in plain numpy, straight from the original parameter layout.

This is the yardstick: the importer and the fast live path are checked against it, and the
step benchmark measures it. It reads the Lasagne ``param_values`` list as the original model
used it (``x @ W`` with row vectors, gates i, f, c, o) and shares no code with our model.
"""

from __future__ import annotations

import numpy as np


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class NumpyFolkRNN:
    """One tune at a time: ``step(token)`` feeds a token and returns p(next token)."""

    def __init__(self, param_values: list[np.ndarray], token2idx: dict[str, int], dtype=np.float64):
        p = [np.asarray(a, dtype=dtype) for a in param_values]
        self.token2idx = dict(token2idx)
        self.embedding = p[0]
        self.layers = []
        for base in range(1, len(p) - 2, 14):
            gates = [(p[base + 3 * g], p[base + 3 * g + 1], p[base + 3 * g + 2]) for g in range(4)]
            self.layers.append({"gates": gates, "c0": p[base + 12].reshape(-1), "h0": p[base + 13].reshape(-1)})
        self.V, self.v = p[-2], p[-1]
        self.dtype = dtype
        self.reset()

    def reset(self) -> None:
        self.h = [layer["h0"].copy() for layer in self.layers]
        self.c = [layer["c0"].copy() for layer in self.layers]

    def step_vector(self, x: np.ndarray) -> np.ndarray:
        """Feed an input vector in the original token order (or one row per voice, with ``h`` and ``c``
        tiled to as many rows, as the step benchmark does); return the softmax output."""
        x = x @ self.embedding
        for l, layer in enumerate(self.layers):
            (wxi, whi, bi), (wxf, whf, bf), (wxc, whc, bc), (wxo, who, bo) = layer["gates"]
            h_prev, c_prev = self.h[l], self.c[l]
            i = _sigmoid(x @ wxi + h_prev @ whi + bi)
            f = _sigmoid(x @ wxf + h_prev @ whf + bf)
            c = f * c_prev + i * np.tanh(x @ wxc + h_prev @ whc + bc)
            o = _sigmoid(x @ wxo + h_prev @ who + bo)
            h = o * np.tanh(c)
            self.h[l], self.c[l] = h, c
            x = h
        z = x @ self.V + self.v
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)

    def step(self, token: str) -> np.ndarray:
        x = np.zeros(len(self.token2idx), dtype=self.dtype)
        x[self.token2idx[token]] = 1.0
        return self.step_vector(x)
