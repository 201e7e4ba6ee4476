"""Patches a hostile or careless hand might save: an alias bomb, a 50 MB file, a self-referring
alias, endless nesting, a huge value. Each is refused in one short line, fast and in little
memory, by ``patch check`` and by the hot reload (which checks in a child process)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from controllers.patch import MAX_PATCH_BYTES, PatchError, load_patch, parse_patch
from controllers.watcher import PatchWatcher, load_isolated
from tests.helpers import DATA, ROOT
from bench.harness.midi import wait_for
from tests.timing import machine_jitter

ALIAS_BOMB = (DATA / "alias-bomb.yaml").read_text()  # 475 bytes, 9^9 strings once expanded

GOOD = "name: good\nmappings:\n  - source: {osc: /1/fader1}\n    target: tempo\n    range: [60, 180]\n"


def check(path, tmp_path) -> tuple[int, str, float, int]:
    """``run.py patch check PATH``: exit code, stderr, wall seconds and the child's own peak RSS."""
    err = tmp_path / "stderr.txt"
    started = time.monotonic()
    with err.open("w") as sink:
        proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "patch", "check", str(path)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=sink)
    killer = threading.Timer(60, proc.kill)  # still running after a minute: killed, and fails below
    killer.start()
    _, status, usage = os.wait4(proc.pid, 0)
    killer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, err.read_text(), time.monotonic() - started, usage.ru_maxrss * 1024


def test_the_alias_bomb_is_small():
    assert len(ALIAS_BOMB.encode()) < 515


@pytest.mark.realtime
def test_patch_check_refuses_the_alias_bomb_in_seconds_and_little_memory(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    with machine_jitter() as jitter:
        code, err, seconds, peak = check(bomb, tmp_path)
    assert code == 2
    assert err.strip() == f"{bomb}:7: patch: with its aliases (*name) expanded this holds over 10,000 values; " \
                          "write the values out, without aliases"
    # seconds: mostly torch and the shipped model loading (the bomb expanded takes 9.5 GB and minutes)
    assert seconds < 20 + jitter.max and 0 < peak < 1 << 30, (seconds, peak, str(jitter))


def test_the_checks_see_what_aliases_expand_to(tmp_path):
    nested = "name: x\nstart: &s {ablation.units: [1, *s]}\n"
    with pytest.raises(PatchError, match=r"p.yaml:2: patch: an alias refers to the value it is inside of"):
        parse_patch(nested, "p.yaml")
    deep = "name: x\nstart: {ablation.units: " + "[" * 5000 + "]" * 5000 + "}\n"
    with pytest.raises(PatchError, match="nested"):
        parse_patch(deep, "p.yaml")
    shared = "name: x\nmappings:\n  - source: &f {osc: /1/fader1}\n    target: tempo\nactions:\n  - source: *f\n    fire: tune.new\n"
    patch = parse_patch(shared, "p.yaml")  # aliases within the bound are fine
    assert patch.mapping_count == 1 and patch.action_count == 1


@pytest.mark.realtime
def test_a_50_mb_patch_is_refused_from_its_size_without_reading_it(tmp_path):
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:
        f.truncate(50_000_000)  # sparse: refused before a byte is read
    with machine_jitter() as jitter:
        started = time.perf_counter()
        with pytest.raises(PatchError) as caught:
            load_patch(big)
        took = time.perf_counter() - started
    assert took < 0.05 + jitter.max, (took, str(jitter))  # reading and parsing it took 6 s
    assert caught.value.errors == [f"{big}:1: patch: 50,000,000 bytes is over the 64 KiB a patch may have; is it the right file?"]
    just = tmp_path / "just.yaml"
    just.write_text(GOOD + "#" * (MAX_PATCH_BYTES - len(GOOD) - 1) + "\n")
    assert load_patch(just).mapping_count == 1


def test_error_messages_quote_a_short_excerpt(tmp_path):
    huge = "name: x\nstart:\n  temperature: [" + ", ".join(["123456789"] * 2000) + "]\n  ablation.units: [" + \
           ", ".join(['"' + "u" * 50 + '"'] * 500) + "]\nmappings:\n" + \
           "".join(f"  - source: {{osc: /f{i}}}\n    target: nope\n" for i in range(100))
    path = tmp_path / "huge.yaml"
    path.write_text(huge)
    with pytest.raises(PatchError) as caught:
        load_patch(path)
    errors = caught.value.errors
    assert len(errors) == 51 and errors[-1].endswith("more mistakes follow; fix these first")
    assert max(len(e) for e in errors) < 400, max(errors, key=len)


def test_the_hot_reload_checks_in_a_child_and_keeps_the_old_patch(tmp_path):
    path = tmp_path / "live.yaml"
    path.write_text(GOOD)
    loaded = []
    watcher = PatchWatcher(path, lambda patch, switched: loaded.append(patch), interval=0.05)
    try:
        path.write_text(ALIAS_BOMB)
        assert wait_for(lambda: watcher.rejected == 1, timeout=10)
        assert "aliases" in watcher.last_error and len(watcher.last_error) < 300
        big = tmp_path / "big.tmp"
        with big.open("wb") as f:
            f.truncate(50_000_000)
        os.replace(big, path)
        assert wait_for(lambda: watcher.rejected == 2, timeout=10)
        assert "50,000,000 bytes" in watcher.last_error
        path.write_text(GOOD.replace("[60, 180]", "[70, 170]"))
        assert wait_for(lambda: watcher.reloads == 1, timeout=10)
        assert loaded[0].mappings[("osc", "/1/fader1", 0)][0].lo == 70.0
    finally:
        watcher.close()


def test_the_child_checker_gives_the_same_answer_as_checking_here(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: x\nstart:\n  temperature: 9\n")
    with pytest.raises(PatchError) as here:
        load_patch(path)
    with pytest.raises(PatchError) as there:
        load_isolated(path)
    assert here.value.errors == there.value.errors
    assert load_isolated(ROOT / "patches" / "default.yaml") == load_patch(ROOT / "patches" / "default.yaml")
