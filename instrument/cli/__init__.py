"""Command-line plumbing shared by every ``run.py`` command.

Each command is a module with ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. Modules are imported only when their command runs, so ``--help``
stays instant even though most commands need torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn, Sequence

from instrument.errors import UsageError


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit with code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def fail(message: str) -> NoReturn:
    """Raise a user error; the entry point prints it as one line and exits 2."""
    raise UsageError(message)


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
    module = importlib.import_module(names[name][0])
    parser = Parser(prog=f"{prog} {name}", description=names[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except UsageError as error:
        print(f"{prog} {name}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
