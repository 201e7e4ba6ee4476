"""Hot reload: a thread that notices a saved patch file and loads it, keeping the old one if
the new version has mistakes (a half-typed edit must not stop the performance).

It also loads another patch on request (a MIDI program change): loading reads a file, which
controller threads must not wait for, so they only ask and this thread does the work.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Callable, Iterable

from controllers.patch import Patch, PatchError, load_patch
from instrument.live.params import ParamSpec

log = logging.getLogger(__name__)


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
            patch = load_patch(path, self.specs)
        except PatchError as error:
            self.rejected += 1
            self.last_error = str(error)
            what = "not switching to it" if switched else "keeping the previous version"
            log.warning("patch not loaded, %s: %s", what, error)
            return
        if switched:
            self.path, self._stamp = path, stamp
        self.last_error = None
        self.reloads += 1
        log.info("patch %s: %s (%d mappings, %d actions)", "switched" if switched else "reloaded",
                 path, patch.mapping_count, patch.action_count)
        self.on_load(patch, switched)
