"""The compiled fast step against the torch path, under every live control."""

import json
import math
import multiprocessing
import threading
from dataclasses import replace

import numpy as np
import pytest
import torch

from instrument.model import fast_step, vocab
from instrument.model.network import FolkRNN, ModelConfig
from instrument.model.controls import Ablation, Controls, Stimulation
from instrument.model.stepper import Stepper
from tests.helpers import make_model, run_cli

PROMPT = ["<s>", "M:4/4", "K:Cmaj"]
needs_kernel = pytest.mark.skipif(not fast_step.available(), reason="fast kernel unavailable on this machine")
pytestmark = needs_kernel


@pytest.fixture(autouse=True)
def torch_one_thread():
    """The torch path's small products gain nothing from torch's thread pool, whose barriers
    cost milliseconds on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tame_model(hidden: int, seed: int = 0) -> FolkRNN:
    """Random weights whose dynamics contract (recurrent gain 0.6, no integrating forget bias), so
    float32 rounding does not grow along a tune and two float32 paths can be held to 1e-5 over
    hundreds of steps (each stays within ~1e-6 of float64 here). Sharp output distributions."""
    g = torch.Generator().manual_seed(seed)
    model = FolkRNN(ModelConfig(hidden=hidden)).eval()
    with torch.no_grad():
        for layer in model.layers:
            fan_in = layer.w_ih.shape[1]
            layer.w_ih.copy_(torch.randn(layer.w_ih.shape, generator=g) * (3.0 if fan_in == vocab.SIZE else 1.0) / math.sqrt(fan_in))
            layer.w_hh.copy_(torch.randn(layer.w_hh.shape, generator=g) * 0.6 / math.sqrt(hidden))
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=g) * 0.5)
            layer.h0.copy_(torch.randn(hidden, generator=g) * 0.3)
            layer.c0.copy_(torch.randn(hidden, generator=g) * 0.3)
        model.out.weight.copy_(torch.randn(model.out.weight.shape, generator=g) * 6.0 / math.sqrt(hidden))
        model.out.bias.copy_(torch.randn(vocab.SIZE, generator=g) * 0.5)
    return model


def snapshot(s: Stepper) -> dict[str, np.ndarray]:
    r = s.readout
    return {
        "h": np.stack([x.numpy().copy() for x in r.h]),
        "c": np.stack([x.numpy().copy() for x in r.c]),
        "logits": r.logits.numpy().copy(),
        "probs": r.probs.numpy().copy(),
        "sampling": r.sampling.numpy().copy(),
    }


def per_voice_controls(voices: int, hidden: int) -> list[Controls]:
    """Each voice its own temperature, stimulation and ablation (an ensemble's voices)."""
    kinds = [
        Controls(temperature=0.7, stimulation=Stimulation.seed_two_hot(0.4), ablation=Ablation({0: [2, 5], 2: [hidden - 2]}, "output")),
        Controls(temperature=1.3, ablation=Ablation({1: [1, 7, 11]}, "silence"), guard=True),
        Controls(temperature=0.0, stimulation=Stimulation.tokens(["D", "A"], 0.3, sampled_weight=0.7),
                 logit_bias=np.where(np.arange(vocab.SIZE) == vocab.INDEX["|"], 2.0, 0.0)),
        Controls(),
    ]
    return [kinds[v % len(kinds)] for v in range(voices)]


def play_scenario(steppers, steps, rng_seed=0):
    """Drive steppers in lockstep through every control; yield (step, tokens per stepper)."""
    voices, hidden = steppers[0].voices, steppers[0].config.hidden
    rng = np.random.default_rng(rng_seed)
    per_voice_bias = rng.normal(0.0, 1.5, (voices, vocab.SIZE))
    shared_bias = rng.normal(0.0, 1.0, vocab.SIZE)
    cut = [0, 3] if voices > 3 else [0]
    c = Controls()  # the shared controls, changed as a performer would
    for s in steppers:
        s.force(PROMPT)
    for t in range(steps):
        if t == 30:
            c = replace(c, stimulation=Stimulation(
                sampled_weight=0.6, forced=((vocab.INDEX["E"], 0.25), (vocab.INDEX["G"], 0.1)), random_pitch_class=0.15))
        elif t == 50:
            c = replace(c, stimulation=Stimulation.seed_two_hot())
        elif t == 70:
            c = replace(c, stimulation=Stimulation(), ablation=Ablation({0: [1, 2, 30], 2: [0, 5, 9, hidden - 1]}, "output"))
        elif t == 110:
            c = replace(c, ablation=Ablation({1: [4, 5, 6, hidden - 3], 2: [7]}, "silence"), temperature=0, logit_bias=shared_bias)
        elif t == 150:
            c = replace(c, guard=True, ablation=Ablation(), logit_bias=None)
        elif t == 190:
            c = replace(c, stimulation=Stimulation.tokens(["C", "E", "G"], 0.2, sampled_weight=0.8), temperature=0.8)
        if 70 <= t < 110:  # one bias row per voice
            controls = [replace(c, logit_bias=per_voice_bias[v]) for v in range(voices)]
        elif 150 <= t < 190:  # one temperature per voice
            controls = [replace(c, temperature=(0.5, 1.5, 0.0, 1.0)[v % 4]) for v in range(voices)]
        elif t >= 230:  # every control per voice
            controls = per_voice_controls(voices, hidden)
        else:
            controls = c
        for s in steppers:
            if t == 90:
                s.reset(cut)
                s.force(PROMPT, voices=cut, controls=controls)
            elif t == 140:
                s.force(["|:"], controls=controls)
            elif t == 220:
                s.force([[vocab.TOKENS[(v * 7) % 84]] for v in range(voices)], controls=controls)  # one token per voice
        yield t, [s.step(controls) for s in steppers]


@pytest.mark.parametrize("voices,threads", [(1, 1), (16, 1), (16, 2), (5, 2)])
def test_fast_path_equals_the_torch_path_under_every_control(voices, threads):
    model = tame_model(hidden=72, seed=2)  # 9 unit groups: odd, and k blocks of 128 in layers 2-3
    fast = Stepper(model, voices=voices, seed=21, threads=threads)
    ref = Stepper(model, voices=voices, seed=21, backend="torch")
    assert fast.backend == "fast" and ref.backend == "torch"
    worst = 0.0
    for t, (a, b) in play_scenario([fast, ref], 270):
        np.testing.assert_array_equal(a, b, err_msg=f"tokens differ at step {t}")
        x, y = snapshot(fast), snapshot(ref)
        for key in ("h", "probs", "sampling"):  # bounded: within 1e-5
            worst = max(worst, float(np.abs(x[key] - y[key]).max()))
            np.testing.assert_allclose(x[key], y[key], atol=1e-5, rtol=0, err_msg=f"{key} at step {t}")
        for key in ("c", "logits"):  # unbounded (c integrates): within 1e-5 of their size (max norm)
            scale = np.maximum(1.0, np.abs(y[key]).max(axis=-1, keepdims=True))
            assert np.all(np.abs(x[key] - y[key]) <= 1e-5 * scale), f"{key} at step {t}"
    assert worst > 0  # the two paths are really different code


def test_padded_hidden_size_and_readout_shapes():
    model = tame_model(hidden=36, seed=4)  # not a multiple of 8: padded units inside the kernel
    fast = Stepper(model, voices=3, seed=2)
    ref = Stepper(model, voices=3, seed=2, backend="torch")
    for t, (a, b) in play_scenario([fast, ref], 120, rng_seed=3):
        np.testing.assert_array_equal(a, b)
        x, y = snapshot(fast), snapshot(ref)
        for key in x:
            assert x[key].shape == y[key].shape
            scale = np.maximum(1.0, np.abs(y[key]).max(axis=-1, keepdims=True))
            assert np.all(np.abs(x[key] - y[key]) <= 1e-5 * scale), f"{key} at step {t}"
    assert fast.readout.h[0].shape == (3, 36)


def test_full_size_model_with_two_threads_matches_the_torch_path():
    model = tame_model(hidden=512, seed=1)  # 3 x 512: the real layout, 16 chunks per layer
    fast = Stepper(model, voices=4, seed=8, threads=2)
    ref = Stepper(model, voices=4, seed=8, backend="torch")
    for s in (fast, ref):
        s.force(PROMPT)
    two_hot = Controls(stimulation=Stimulation.seed_two_hot())
    for _ in range(40):
        np.testing.assert_array_equal(fast.step(two_hot), ref.step(two_hot))
        np.testing.assert_allclose(fast.readout.probs.numpy(), ref.readout.probs.numpy(), atol=1e-5)
        np.testing.assert_allclose(fast.readout.h[2].numpy(), ref.readout.h[2].numpy(), atol=1e-5)


def test_a_voice_does_not_depend_on_batch_size_or_threads_bit_for_bit():
    model = make_model(hidden=72, seed=5)
    runs = []
    for voices, threads in ((1, 1), (2, 1), (3, 2), (16, 1), (16, 2)):
        s = Stepper(model, voices=voices, seed=13, threads=threads)
        controls = Controls(stimulation=Stimulation.tokens(["A"], 0.3, sampled_weight=0.7))
        s.force(PROMPT)
        out = []
        for _ in range(60):
            token = int(s.step(controls)[0])
            out.append((token, s.readout.logits[0].numpy().copy(), s.readout.c[2][0].numpy().copy()))
        runs.append(out)
    for other in runs[1:]:
        for (t0, l0, c0), (t1, l1, c1) in zip(runs[0], other):
            assert t0 == t1
            assert np.array_equal(l0, l1) and np.array_equal(c0, c1)


def test_the_kernel_can_fail_this_test():
    """A wrong weight must show: the comparison above is not vacuous."""
    model = make_model(hidden=32, seed=1)
    fast = Stepper(model, seed=1)
    with torch.no_grad():
        model.layers[1].w_hh[5, 7] += 0.5  # the torch path repacks from the model, the fast path is already packed
    ref = Stepper(model, seed=1, backend="torch")
    packed_again = Stepper(model, seed=1)  # a changed parameter is re-packed
    for s in (fast, ref, packed_again):
        s.force(PROMPT)
    greedy = Controls(temperature=0)
    diffs, same = [], []
    for _ in range(10):
        fast.step(greedy), ref.step(greedy), packed_again.step(greedy)
        diffs.append(float((fast.readout.probs - ref.readout.probs).abs().max()))
        same.append(float((packed_again.readout.probs - ref.readout.probs).abs().max()))
    assert max(diffs) > 1e-4 and max(same) < 1e-5


def one_step_deviation(model, precision, steps=150, voices=4):
    """Largest one-step differences of a reduced-precision net from float32, both starting every
    step from the float32 net's state (the weights' rounding alone, not the dynamics' drift)."""
    a = Stepper(model, voices=voices, seed=3, precision="float32")
    b = Stepper(model, voices=voices, seed=3, precision=precision)
    for s in (a, b):
        s.force(PROMPT)
    na, nb = a._net, b._net
    worst_tv = worst_abs = 0.0
    for _ in range(steps):
        for dst, src in zip(nb.inp + nb.c_buf, na.inp + na.c_buf):
            dst[:] = src
        tokens = a.step()
        b.step()
        b._pending[:] = tokens
        p, q = a.readout.probs.double().numpy(), b.readout.probs.double().numpy()
        worst_tv = max(worst_tv, float(0.5 * np.abs(p - q).sum(1).max()))
        worst_abs = max(worst_abs, float(np.abs(p - q).max()))
    return worst_tv, worst_abs


@pytest.mark.parametrize("precision", sorted(fast_step.TOLERANCE))
def test_reduced_precision_within_stated_tolerance(precision):
    torch.manual_seed(1)
    model = FolkRNN(ModelConfig(hidden=128)).eval()
    with torch.no_grad():  # livelier than the initialisation: sharper distributions, larger sums
        for p in model.parameters():
            p.mul_(2.0)
    tv, _ = one_step_deviation(model, precision)
    assert 0 < tv <= fast_step.TOLERANCE[precision], (precision, tv)


def test_reduced_precision_is_exact_for_representable_weights():
    model = make_model(hidden=40, seed=6)
    with torch.no_grad():
        for layer in model.layers:
            for p in (layer.w_ih, layer.w_hh):
                p.copy_(torch.from_numpy(fast_step.from_bf16(fast_step.to_bf16(p.numpy()))))
    a = Stepper(model, voices=2, seed=4, precision="float32")
    b = Stepper(model, voices=2, seed=4, precision="bf16")
    for s in (a, b):
        s.force(PROMPT)
    for _ in range(30):
        np.testing.assert_array_equal(a.step(), b.step())
        assert torch.equal(a.readout.logits, b.readout.logits)


def test_auto_precision_streams_fp16_only_where_it_is_exact_and_few_voices_share_a_step():
    model = make_model(hidden=40, seed=7)
    assert Stepper(model, voices=1).precision == "float32"  # float32 weights: fp16 would round them
    with torch.no_grad():  # as a checkpoint stored in fp16 (the shipped model) loads
        for p in model.parameters():
            p.copy_(p.half().float())
    assert fast_step.fp16_exact(model)
    assert Stepper(model, voices=16).precision == "float32"  # many voices: arithmetic-bound
    a = Stepper(model, voices=2, seed=5, precision="float32")
    b = Stepper(model, voices=2, seed=5)
    assert b.precision == "fp16"
    for s in (a, b):
        s.force(PROMPT)
    for _ in range(100):
        np.testing.assert_array_equal(a.step(), b.step())
        assert torch.equal(a.readout.logits, b.readout.logits)


def test_concurrent_steppers_in_threads_give_sequential_results():
    model = make_model(hidden=64, seed=7)

    def run(seed, out):
        s = Stepper(model, voices=3, seed=seed, threads=2)
        s.force(PROMPT)
        out.extend(s.step().tolist() for _ in range(80))

    expected = {}
    for seed in (1, 2, 3):
        expected[seed] = []
        run(seed, expected[seed])
    got = {seed: [] for seed in (1, 2, 3)}
    workers = [threading.Thread(target=run, args=(seed, got[seed])) for seed in got]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert got == expected


def _child(queue):
    model = make_model(hidden=64, seed=7)
    s = Stepper(model, voices=2, seed=1, threads=2)
    s.force(PROMPT)
    queue.put([s.step().tolist() for _ in range(20)])


def test_two_threads_work_after_fork():
    model = make_model(hidden=64, seed=7)
    s = Stepper(model, voices=2, seed=1, threads=2)  # the helper thread exists in the parent
    s.force(PROMPT)
    expected = [s.step().tolist() for _ in range(20)]
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(queue,))
    child.start()
    got = queue.get(timeout=60)
    child.join(timeout=10)
    assert got == expected and child.exitcode == 0


def test_generation_skips_ended_voices_and_matches_the_torch_path():
    from instrument.model.generate import generate_tunes

    model = make_model(hidden=48, seed=8)
    fast = generate_tunes(model, 7, seed=3, max_tokens=150, batch=4)
    ref = generate_tunes(model, 7, seed=3, max_tokens=150, batch=4, backend="torch", threads=1)
    assert [t.body for t in fast] == [t.body for t in ref]
    assert [t.ended for t in fast] == [t.ended for t in ref]
    assert any(t.ended for t in fast) and len({len(t.body) for t in fast}) > 1


def test_a_tune_is_the_same_whatever_the_batch_it_was_written_in():
    """Continuous batching hands tunes to voices as others end; tune k keeps its own generator."""
    from instrument.model.generate import generate_tunes

    model = make_model(hidden=48, seed=8)
    alone = generate_tunes(model, 6, seed=5, max_tokens=150, batch=1)
    shared = generate_tunes(model, 6, seed=5, max_tokens=150, batch=4)
    assert [(t.meter, t.mode, t.body, t.ended) for t in alone] == [(t.meter, t.mode, t.body, t.ended) for t in shared]
    forced = generate_tunes(model, 5, meter="6/8", mode="dor", prompt=["c", "d"], seed=5, max_tokens=60, batch=2)
    assert all(t.meter == "6/8" and t.mode == "dor" and t.body[:2] == ["c", "d"] for t in forced)


def fresh_loader(monkeypatch, cache, **env):
    """fast_step as in a new process: nothing loaded yet, no notice given."""
    monkeypatch.setattr(fast_step, "_lib", None)
    monkeypatch.setattr(fast_step, "_tried", False)
    monkeypatch.setattr(fast_step, "why_not", None)
    monkeypatch.setenv("FOLK_INSTRUMENT_CACHE", str(cache))
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def notices(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("instrument.model")]


def test_builds_into_a_fresh_cache(tmp_path, monkeypatch, caplog):
    fresh_loader(monkeypatch, tmp_path / "cache")
    lib = fast_step.load()
    assert lib is not None and lib.fs_abi_version() == fast_step.ABI
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [fast_step.library_path().name]  # no temporary left
    s = Stepper(make_model(), seed=1)
    s.force(PROMPT)
    s.step()
    assert s.backend == "fast" and not notices(caplog)


def test_failed_build_falls_back_with_a_one_line_notice(tmp_path, monkeypatch, caplog):
    fresh_loader(monkeypatch, tmp_path / "cache", CC="false")  # a compiler that always fails
    s = Stepper(make_model(), seed=1)
    s.force(PROMPT)
    s.step()
    again = Stepper(make_model(), seed=1)
    assert s.backend == again.backend == "torch"
    lines = notices(caplog)
    assert len(lines) == 1 and "fast step unavailable" in lines[0] and "torch path runs instead" in lines[0]
    assert not list((tmp_path / "cache").glob("*"))


def test_a_missing_compiler_is_named_as_such_and_not_retried_elsewhere(tmp_path, monkeypatch, caplog):
    fresh_loader(monkeypatch, tmp_path / "cache", CC="/nonexistent/cc")
    s = Stepper(make_model(), seed=1, precision="bf16")  # a precision of the kernel's: float32 instead
    s.force(PROMPT)
    s.step()
    assert (s.backend, s.precision) == ("torch", "float32")
    lines = notices(caplog)
    assert "no C compiler: '/nonexistent/cc' cannot be run" in lines[0] and "install gcc or set CC" in lines[0]
    assert "precision bf16 needs the fast step" in lines[1] and len(lines) == 2
    assert fast_step.why_not.startswith("no C compiler")


def test_the_kernel_refuses_a_network_beyond_the_limits_it_was_built_for():
    """MAXL and MAX_VOCAB are defined once (fast_step.py passes them to the C side, which checks
    them): a structure claiming a larger vocabulary is refused, not run over the sampler's buffers."""
    s = Stepper(make_model(), seed=1)
    if s.backend != "fast":
        pytest.skip("the fast step is unavailable here")
    s.force(PROMPT)
    net = s._net
    net.net.vocab = fast_step.MAX_VOCAB + 1
    with pytest.raises(RuntimeError, match="refused a network over"):
        s.step()


def test_without_a_compiler_or_a_writable_cache_play_and_generate_run_and_say_why_slower(tmp_path, small_checkpoint):
    """As on a machine without gcc: CC names nothing and the cache cannot be made (/proc refuses a
    directory even to root); play and generate still work, on the torch path, and say why."""
    env = {"CC": "/nonexistent", "FOLK_INSTRUMENT_CACHE": "/proc/folk-instrument-cache", "TMPDIR": "/proc"}
    generated = run_cli("generate", "--model", str(small_checkpoint), "-n", "2", "--seed", "1", "--max-tokens", "40", env=env)
    assert generated.returncode == 0 and generated.stdout.startswith("M:"), generated.stderr
    played = run_cli("play", "--model", str(small_checkpoint), "--seconds", "5", "--midi-out", "none", "--no-audio",
                     "--quiet", "--no-osc", "--no-myo", "--midi-in", "none", "--record", str(tmp_path / "take.mid"),
                     "--seed", "1", env=env, timeout=120)
    assert played.returncode == 0 and "limit reached" in played.stderr, played.stderr
    for result in (generated, played):
        assert "fast step unavailable (no C compiler: '/nonexistent' cannot be run" in result.stderr, result.stderr
        assert "torch path runs instead, several times slower" in result.stderr
    info = json.loads(run_cli("info", "--model", str(small_checkpoint), "--json", env=env).stdout)
    assert info["step"]["backend"] == "torch" and info["step"]["precision"] == "float32"
    assert info["step"]["why_not_fast"].startswith("no C compiler")
