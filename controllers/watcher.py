"""Hot reload: a thread that notices a saved patch file and loads it, keeping the old one if
the new version has mistakes (a half-typed edit must not stop the performance).

It also loads another patch on request (a MIDI program change): loading reads a file, which
controller threads must not wait for, so they only ask and this thread does the work.

The file is read and checked in a child process (``load_isolated``), not in this thread: Python
threads share one GIL, and a thread parsing YAML makes the model thread wait for it at every
release (measured: composing a note took 11.5 ms instead of 0.4 ms, median, while a 64 KiB patch
was parsed over and over). This thread only waits on the child's pipe, GIL released, and reads
back the small checked result. The child runs under memory and CPU limits, so no file, however
made, can slow or starve the performance.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, Iterable

from controllers.patch import Patch, PatchError, load_patch
from instrument.errors import excerpt
from instrument.live.params import ParamSpec

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
CHILD_TIMEOUT_S = 20.0  # a patch within the size bounds is checked in well under a second
CHILD_MEMORY = 1 << 30  # address space of the child, bytes
CHILD_CPU_S = 10


class PatchWatcher:
    """Polls ``path``'s modification time every ``interval`` seconds; calls
    ``on_load(patch, switched)`` from its thread with each valid new version (``switched``:
    loaded by ``switch``, a different patch, rather than a save of the same one)."""

    def __init__(self, path: str | Path, on_load: Callable[[Patch, bool], None], interval: float = 0.5,
                 specs: Iterable[ParamSpec] | None = None):
        self.path = Path(path)
        self.on_load = on_load
        self.interval = interval
        self.specs = tuple(specs) if specs is not None else None
        self.reloads = 0
        self.rejected = 0
        self.last_error: str | None = None
        self._stamp = self._stat()
        self._pending: Path | None = None
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="patch-watcher", daemon=True)
        self._thread.start()

    def switch(self, path: str | Path) -> None:
        """Load another patch soon (on this thread) and watch it from then on. Never blocks."""
        self._pending = Path(path)
        self._wake.set()

    def close(self) -> None:
        """Stop watching. Idempotent."""
        self._stop = True
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(2.0)

    def _stat(self, path: Path | None = None) -> tuple[int, int] | None:
        try:
            st = os.stat(path or self.path)
            return st.st_mtime_ns, st.st_size
        except OSError:
            return None

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop:
                break
            try:
                pending, self._pending = self._pending, None
                if pending is not None:
                    self._load(pending, switched=True)
                    continue
                stamp = self._stat()
                if stamp is not None and stamp != self._stamp:
                    self._stamp = stamp
                    self._load(self.path, switched=False)
            except Exception:  # the watcher outlives anything a patch or a callback does
                log.exception("patch reload failed")

    def _load(self, path: Path, switched: bool) -> None:
        stamp = self._stat(path)
        try:
            patch = load_isolated(path, self.specs)
        except PatchError as error:
            self.last_error = str(error)
            what = "not switching to it" if switched else "keeping the previous version"
            log.warning("patch not loaded, %s: %s", what, error)
            self.rejected += 1  # once said: a count that moved means the line is in the log
            return
        if switched:
            self.path, self._stamp = path, stamp
        self.last_error = None
        self.reloads += 1
        log.info("patch %s: %s (%d mappings, %d actions)", "switched" if switched else "reloaded",
                 path, patch.mapping_count, patch.action_count)
        self.on_load(patch, switched)


def load_isolated(path: str | Path, specs: Iterable[ParamSpec] | None = None, timeout: float = CHILD_TIMEOUT_S) -> Patch:
    """``load_patch`` in a child process; the caller only waits (GIL released). Raises
    PatchError as ``load_patch`` does, also when the child fails or runs out of time."""
    request = pickle.dumps((str(path), None if specs is None else tuple(specs)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))),
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    try:
        done = subprocess.run([sys.executable, "-m", "controllers.watcher"], input=request, capture_output=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise PatchError([f"{path}: checking it took over {timeout:g} s; is it the right file?"]) from None
    except OSError as error:
        raise PatchError([f"{path}: could not start the patch checker ({excerpt(error)})"]) from None
    try:
        kind, value = pickle.loads(done.stdout)  # our own child's answer: a Patch or error lines
    except Exception:
        why = excerpt(done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {done.returncode}"])
        raise PatchError([f"{path}: the patch checker failed ({why}); is it the right file?"]) from None
    if kind == "errors":
        raise PatchError(value)
    return value


def _child() -> None:
    """The child's side of ``load_isolated``: limits first, then read and check one patch."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))
    resource.setrlimit(resource.RLIMIT_CPU, (CHILD_CPU_S, CHILD_CPU_S))
    path, specs = pickle.loads(sys.stdin.buffer.read())
    try:
        answer = ("patch", load_patch(path, specs))
    except PatchError as error:
        answer = ("errors", error.errors)
    except MemoryError:
        answer = ("errors", [f"{path}: checking it needed over {CHILD_MEMORY >> 20} MB; is it the right file?"])
    sys.stdout.buffer.write(pickle.dumps(answer))


if __name__ == "__main__":
    _child()
