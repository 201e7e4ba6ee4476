"""Command-line plumbing shared by every ``run.py`` command.

Each command is a module with ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. Modules are imported only when their command runs, so ``--help``
stays instant even though most commands need torch.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from typing import NoReturn, Sequence

from instrument.errors import UsageError

# What each third-party import is installed as: a missing one is named in one line.
DEPENDENCIES = {"torch": "torch", "numpy": "numpy", "rtmidi": "python-rtmidi", "pythonosc": "python-osc",
                "sounddevice": "sounddevice", "yaml": "pyyaml", "mido": "mido", "music21": "music21",
                "matplotlib": "matplotlib", "rich": "rich", "aiohttp": "aiohttp"}
CPU_TORCH = "pip install torch --index-url https://download.pytorch.org/whl/cpu"

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


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit with code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def fail(message: str) -> NoReturn:
    """Raise a user error; the entry point prints it as one line and exits 2."""
    raise UsageError(message)


MAX_SEED = 2**63 - 1  # what every generator a seed reaches takes (numpy, random, torch)


def seed(text: str) -> int:
    """An argparse type: a random seed, a whole number 0..2**63-1 (numpy refuses a negative one
    deep inside, with a traceback)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a seed is a whole number, not {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"a seed is a whole number from 0 to {MAX_SEED}, not {text}")
    return value


def seconds(text: str) -> float:
    """An argparse type: a length of time in seconds, finite and 0 or more (``nan`` compares false
    with everything, so a plain ``< 0`` check lets it through and it means "forever")."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"give a number of seconds, not {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"give a finite number of seconds, 0 or more, not {text}")
    return value


def main(commands: Sequence[tuple[str, str, str]], argv: Sequence[str], prog: str = "run.py") -> int:
    """Dispatch ``argv`` to one of ``commands`` (name, module, help) and run it.

    A ``UsageError`` becomes one line on stderr and exit code 2; Ctrl-C exits 130 quietly.
    """
    names = {name: (module, help_) for name, module, help_ in commands}
    if not argv or argv[0] in ("-h", "--help"):
        width = max(len(n) for n in names)
        lines = [f"usage: {prog} <command> [options]", "", "commands:"]
        lines += [f"  {n:<{width}}  {h}" for n, (_, h) in names.items()]
        lines += ["", f"'{prog} <command> --help' describes one command."]
        print("\n".join(lines))
        return 0 if argv else 2
    name, rest = argv[0], list(argv[1:])
    if name not in names:
        print(f"{prog}: error: unknown command {name!r}; choose from: {', '.join(names)}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(names[name][0])
        parser = Parser(prog=f"{prog} {name}", description=names[name][1])
        module.add_arguments(parser)
        args = parser.parse_args(rest)
        return int(module.run(args) or 0)
    except ModuleNotFoundError as error:
        missing = (error.name or "").split(".")[0]
        if missing not in DEPENDENCIES:
            raise
        hint = f" (without an NVIDIA GPU: {CPU_TORCH})" if missing == "torch" else ""
        print(f"{prog} {name}: error: the Python package {DEPENDENCIES[missing]!r} is missing; install it: "
              f"pip install {DEPENDENCIES[missing]}{hint}, or pip install folk-instrument", file=sys.stderr)
        return 1
    except UsageError as error:
        print(f"{prog} {name}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def entry() -> int:
    """The ``folk-instrument`` console command (``[project.scripts]``): the same as ``python run.py``."""
    return main(COMMANDS, sys.argv[1:], prog="folk-instrument")
