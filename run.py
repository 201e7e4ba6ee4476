#!/usr/bin/env python3
"""The one entry point of the instrument from a source tree: ``python run.py <command> [options]``
(installed, the same is the ``folk-instrument`` command)."""

import sys

from instrument.cli import COMMANDS, main

if __name__ == "__main__":
    sys.exit(main(COMMANDS, sys.argv[1:]))
