"""The C parts, compiled with the system's compiler at first use and cached by their source's hash."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence


def cache_dir() -> Path:
    """Where compiled parts are kept: $FOLK_INSTRUMENT_CACHE, else the user cache directory."""
    if os.environ.get("FOLK_INSTRUMENT_CACHE"):
        return Path(os.environ["FOLK_INSTRUMENT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "folk-instrument"


def build(source: Path, target: Path, flags: Sequence[str], libs: Sequence[str] = ("-lm",)) -> None:
    """Compile ``source`` into the shared library ``target``. Raises RuntimeError with the compiler's last line."""
    compiler = os.environ.get("CC", "gcc")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        result = subprocess.run([compiler, *flags, str(source), "-o", tmp, *libs], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{compiler} failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
        os.replace(tmp, target)  # atomic: concurrent builders all end with a whole file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def built(source: Path, flags: Sequence[str], libs: Sequence[str] = ("-lm",)) -> Path:
    """The compiled library for ``source`` (built now if missing; in a private temporary folder when
    the cache cannot be written). Raises OSError, RuntimeError or SubprocessError."""
    key = hashlib.sha256(source.read_bytes() + " ".join([*flags, *libs]).encode()).hexdigest()[:16]
    path = cache_dir() / f"{source.stem}-{key}.so"
    if not path.exists():
        try:
            build(source, path, flags, libs)
        except OSError:
            path = Path(tempfile.gettempdir()) / f"folk-instrument-{os.getuid()}" / path.name
            if not path.exists():
                build(source, path, flags, libs)
    return path
