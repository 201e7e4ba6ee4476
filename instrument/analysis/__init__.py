"""The seeds' research made repeatable on our model (docs/design.md §3).

- ``record``: generate tunes while keeping every step's token, each layer's h and c, and the
  output distribution (one ``.npz`` file).
- ``spectra``: magnitude spectra of hidden-state sequences (Hann or rectangular window, zero
  padding), share of power in a band of periods, per-layer mean spectra, unit rankings and the
  ablation-set files the live instrument reads; the window facts the seed relies on.
- ``ablate``: the seed ablation experiment (cut the most bar-periodic units, or as many at random,
  and measure counting, ending and pitch statistics).
- ``plots``: headless PNG figures of all of the above.
- ``taps``: decimated per-step activity summaries for the live view and OSC, cheap enough for the
  model thread.

Layers are numbered 1..N in everything a user sees (CLI, files, plots) and 0..N-1 inside the
stepper (``Ablation({2: units})`` is layer 3).
"""
