"""The C parts (the fast step's kernel, the numpy synth's audio callback), compiled with the
system's compiler at first use and cached by a hash of their source, flags and libraries.

One builder for all of them, so each gets the same care: a missing compiler is named as such (and
not retried elsewhere: another folder won't help), an unwritable cache falls back to a private
temporary folder, and concurrent builders each end with a whole file. Callers decide what a
failure means to them (the fast step falls back to torch, the synth to no sound) and say so.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence


class CompilerMissing(OSError):
    """No C compiler to build with (not an unwritable cache: building elsewhere won't help)."""


def cache_dir() -> Path:
    """Where compiled parts are kept: $FOLK_INSTRUMENT_CACHE, else the user cache directory."""
    if os.environ.get("FOLK_INSTRUMENT_CACHE"):
        return Path(os.environ["FOLK_INSTRUMENT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "folk-instrument"


def library_path(source: Path, flags: Sequence[str], libs: Sequence[str] = ("-lm",)) -> Path:
    """Where the library built from ``source`` with ``flags`` and ``libs`` is cached."""
    key = hashlib.sha256(source.read_bytes() + " ".join([*flags, *libs]).encode()).hexdigest()[:16]
    return cache_dir() / f"{source.stem}-{key}.so"


def build(source: Path, target: Path, flags: Sequence[str], libs: Sequence[str] = ("-lm",)) -> None:
    """Compile ``source`` into the shared library ``target``.

    Raises CompilerMissing ($CC, else gcc, cannot be run), RuntimeError (the compiler's last
    line), OSError (``target``'s folder cannot be written) or SubprocessError (a timeout)."""
    compiler = os.environ.get("CC") or "gcc"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        try:
            result = subprocess.run([compiler, *flags, str(source), "-o", tmp, *libs],
                                    capture_output=True, text=True, timeout=120)
        except (FileNotFoundError, PermissionError, NotADirectoryError) as error:
            raise CompilerMissing(f"no C compiler: {compiler!r} cannot be run ({error.strerror}); "
                                  "install gcc or set CC") from None
        if result.returncode != 0:
            raise RuntimeError(f"{compiler} failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
        os.replace(tmp, target)  # atomic: concurrent builders all end with a whole file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def built(source: Path, flags: Sequence[str], libs: Sequence[str] = ("-lm",)) -> Path:
    """The compiled library for ``source``, built now if missing (in a private temporary folder
    when the cache cannot be written). Raises what ``build`` raises."""
    path = library_path(source, flags, libs)
    if not path.exists():
        try:
            build(source, path, flags, libs)
        except CompilerMissing:
            raise
        except OSError:  # an unwritable cache: build into a private temporary one
            path = Path(tempfile.gettempdir()) / f"folk-instrument-{os.getuid()}" / path.name
            if not path.exists():
                build(source, path, flags, libs)
    return path
