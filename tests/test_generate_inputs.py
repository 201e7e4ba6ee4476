"""``generate`` refuses what cannot make a tune, in one line with exit 2: temperatures that are
not finite, and tokens in --prompt that frame a tune rather than belong to its body."""

from __future__ import annotations

import pytest

from tests.helpers import run_cli


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_temperatures_must_be_finite_and_not_negative(small_checkpoint, value):
    result = run_cli("generate", "--model", str(small_checkpoint), f"--temperature={value}")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [f"run.py generate: error: --temperature must be a finite number, 0 or more, not {float(value)}"]


@pytest.mark.parametrize("prompt,hint", [("</s>", "--max-tokens"), ("<s> G", "body tokens"), ("M:4/4 K:Cmaj", "--meter"),
                                         ("G K:Cdor", "--mode")])
def test_header_and_end_tokens_are_refused_in_the_prompt_with_a_hint(small_checkpoint, prompt, hint):
    result = run_cli("generate", "--model", str(small_checkpoint), "--prompt", prompt)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot be in the prompt" in lines[0] and hint in lines[0] and "Traceback" not in lines[0]


def test_a_body_prompt_still_generates_and_notes_reads_the_output(small_checkpoint, tmp_path):
    out = tmp_path / "tunes.txt"
    result = run_cli("generate", "--model", str(small_checkpoint), "--prompt", "|: G c", "--seed", "1", "--max-tokens", "60",
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines()[2].startswith("|: G c")
    assert run_cli("notes", str(out)).returncode == 0
