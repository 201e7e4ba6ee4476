#!/usr/bin/env python3
"""The one entry point of the instrument: ``python run.py <command> [options]``."""

import sys

from instrument.cli import main

# (command, module that implements it, one line of help). Modules load only when used.
COMMANDS = [
    ("generate", "instrument.cli.generate", "generate tunes offline (tokens, ABC or JSON)"),
    ("notes", "instrument.cli.notes", "turn tunes in the tokens format into notes and bar counts (JSON)"),
    ("info", "instrument.cli.info", "describe a model checkpoint"),
    ("import-folkrnn", "instrument.cli.import_folkrnn", "import the original folk-rnn v2 pickle"),
    ("play", "instrument.cli.play", "play live: tune after tune, to MIDI and the built-in synth, steered by controllers"),
    ("render", "instrument.cli.render", "render a performance offline to a WAV file (no device needed)"),
    ("train", "instrument.cli.train", "train a model on a corpus (folk-rnn v2 recipe, resumable, torchrun-ready)"),
    ("corpus", "instrument.cli.corpus", "build the training corpus from music21's ABC folk collections"),
    ("analyze", "instrument.cli.analyze", "the seeds' experiments: record activations, spectra and unit rankings, ablation"),
    ("patch", "instrument.cli.patch", "check YAML patches (controller mappings, actions, start state)"),
    ("gestures", "instrument.cli.gestures", "record, replay or synthesise a Myo Mapper gesture stream"),
    ("view", "instrument.cli.view", "the web page on a recorded take: sheet music, piano roll, time slider and playback"),
]

if __name__ == "__main__":
    sys.exit(main(COMMANDS, sys.argv[1:]))
