"""The live stepper's controls, each checked against the numpy reference or its definition."""

import numpy as np
import pytest
import torch

from instrument.model import vocab
from instrument.model.folkrnn_import import params_from_model
from instrument.model.reference import NumpyFolkRNN
from instrument.model.controls import PLAIN, Ablation, Controls, Stimulation
from instrument.model.stepper import Stepper
from instrument.model.vocab import TokenClass
from tests.helpers import make_model

PROMPT = ["<s>", "M:4/4", "K:Cmaj"]


def run_tokens(stepper, n, controls=PLAIN):
    return [vocab.TOKENS[int(stepper.step(controls)[0])] for _ in range(n)]


def reference_probs(params, tokens, vectors=None):
    """Distributions of the numpy reference after each of ``tokens`` (or input ``vectors``)."""
    ref = NumpyFolkRNN(params, vocab.INDEX)
    if vectors is None:
        return [ref.step(t) for t in tokens]
    return [ref.step_vector(v) for v in vectors]


def test_same_seed_same_tokens_and_different_seed_differs(small_model):
    def sample(seed):
        s = Stepper(small_model, seed=seed)
        s.force(PROMPT)
        return run_tokens(s, 60)

    assert sample(5) == sample(5)
    assert sample(5) != sample(6)


def test_voices_are_independent_and_batch_size_does_not_change_a_voice(small_model):
    one = Stepper(small_model, voices=1, seed=11)
    three = Stepper(small_model, voices=3, seed=11)
    one.force(PROMPT)
    three.force(PROMPT)
    a = [int(one.step()[0]) for _ in range(40)]
    b = [three.step() for _ in range(40)]
    assert a == [int(t[0]) for t in b]
    assert [int(t[1]) for t in b] != a  # its own random stream


def test_temperature_zero_is_greedy(small_model):
    s = Stepper(small_model, seed=1)
    s.force(PROMPT)
    for _ in range(20):
        token = s.step(Controls(temperature=0))[0]
        assert token == int(torch.argmax(s.readout.logits[0]))
        assert s.readout.sampling[0, token] == pytest.approx(1.0)


def test_temperature_scales_the_distribution(small_model):
    s = Stepper(small_model, seed=1)
    s.force(PROMPT)
    s.step(Controls(temperature=2.0))
    logits = s.readout.logits[0].double().numpy()
    body = ~vocab.class_mask(TokenClass.START, TokenClass.METER, TokenClass.MODE)  # never inside a body
    expected = np.where(body, np.exp(logits / 2 - (logits / 2).max()), 0.0)
    np.testing.assert_allclose(s.readout.sampling[0].numpy(), expected / expected.sum(), atol=1e-6)


def test_logit_bias_can_forbid_and_favour(small_model):
    s = Stepper(small_model, seed=2)
    s.force(PROMPT)
    pitches = vocab.class_mask(TokenClass.PITCH)
    only_pitches = Controls(logit_bias=np.where(pitches, 0.0, -np.inf))
    assert all(vocab.TOKEN_CLASS[vocab.INDEX[t]] is TokenClass.PITCH for t in run_tokens(s, 50, only_pitches))
    rests = Controls(logit_bias=np.where(np.arange(vocab.SIZE) == vocab.INDEX["z"], 30.0, 0.0))  # strongly favour rests
    assert run_tokens(s, 30, rests).count("z") >= 28


def test_stimulation_feeds_the_weighted_multi_hot_vector(small_model):
    params = params_from_model(small_model)
    s = Stepper(small_model, seed=4)
    controls = Controls(stimulation=Stimulation.tokens(["E"], 0.3, sampled_weight=0.7))
    s.force(PROMPT)
    vectors, fed = [], []
    for t in PROMPT:
        v = np.zeros(vocab.SIZE)
        v[vocab.INDEX[t]] = 1.0
        vectors.append(v)
    probs = []
    for _ in range(30):
        token = int(s.step(controls)[0])
        probs.append(s.readout.probs[0].numpy().copy())
        v = np.zeros(vocab.SIZE)
        v[token] += 0.7
        v[vocab.INDEX["E"]] += 0.3
        fed.append(v)
    # prompt tokens go in one-hot; sampled tokens go in as 0.7 onehot + 0.3 onehot(E)
    expected = reference_probs(params, None, vectors + fed[:-1])[len(PROMPT) - 1 :]
    np.testing.assert_allclose(np.array(probs), np.array(expected), atol=1e-5)


def test_seed_two_hot_preset_uses_a_random_pitch_class_each_step(small_model):
    plain = Stepper(small_model, seed=9)
    stim = Stepper(small_model, seed=9)
    two_hot = Controls(stimulation=Stimulation.seed_two_hot())
    assert two_hot.stimulation.sampled_weight == pytest.approx(0.7) and two_hot.stimulation.random_pitch_class == 0.3
    for s in (plain, stim):
        s.force(PROMPT)
    assert run_tokens(plain, 40) != run_tokens(stim, 40, two_hot)
    again = Stepper(small_model, seed=9)
    again.force(PROMPT)
    stim2 = Stepper(small_model, seed=9)
    stim2.force(PROMPT)
    assert run_tokens(again, 40, two_hot) == run_tokens(stim2, 40, two_hot)  # reproducible with its seed


def test_output_ablation_of_last_layer_cuts_softmax_columns(small_model):
    units = [0, 3, 7, 20]
    params = params_from_model(small_model)
    params[-2][units, :] = 0.0  # the dense W rows of those units: their connections to the softmax
    s = Stepper(small_model, seed=1)
    s.force(PROMPT)
    tokens = run_tokens(s, 1, Controls(ablation=Ablation({2: units}, "output")))
    ref = NumpyFolkRNN(params, vocab.INDEX)
    for t in PROMPT[:-1]:
        ref.step(t)
    np.testing.assert_allclose(s.readout.probs[0].numpy(), ref.step(PROMPT[-1]), atol=1e-6)
    assert tokens


def test_output_ablation_of_first_layer_cuts_next_layer_inputs_only(small_model):
    units = [1, 2, 30]
    params = params_from_model(small_model)
    base = 1 + 14  # layer 2's arrays
    for g in range(4):
        params[base + 3 * g][units, :] = 0.0  # W_in rows of layer 2 from those layer-1 units
    s = Stepper(small_model, seed=1)
    controls = Controls(ablation=Ablation({0: units}, "output"))
    s.force(PROMPT, controls=controls)  # the prompt is fed through the cut network too
    probs = []
    tokens = []
    for _ in range(25):
        tokens.append(vocab.TOKENS[int(s.step(controls)[0])])
        probs.append(s.readout.probs[0].numpy().copy())
        h1 = s.readout.h[0][0]
        assert float(h1[units].abs().sum()) > 0  # the unit itself still runs
    expected = reference_probs(params, PROMPT + tokens[:-1])[len(PROMPT) - 1 :]
    np.testing.assert_allclose(np.array(probs), np.array(expected), atol=1e-5)


def test_silence_zeroes_h_everywhere_including_recurrence(small_model):
    units = [4, 5, 6]
    silent = Stepper(small_model, seed=1)
    cut = Stepper(small_model, seed=1)
    for s in (silent, cut):
        s.force(PROMPT)
    differ = False
    for _ in range(20):
        silent.step(Controls(temperature=0, ablation=Ablation({1: units}, "silence")))
        cut.step(Controls(temperature=0, ablation=Ablation({1: units}, "output")))
        assert float(silent.readout.h[1][0, units].abs().max()) == 0.0
        differ |= not torch.allclose(silent.readout.probs, cut.readout.probs)
    assert differ  # the recurrence saw the zeros too


def test_controls_change_between_any_two_steps(small_model):
    """A change applies to the very next token: same prefix, then divergence right there."""
    a = Stepper(small_model, seed=3)
    b = Stepper(small_model, seed=3)
    for s in (a, b):
        s.force(PROMPT)
    assert run_tokens(a, 10) == run_tokens(b, 10)
    assert run_tokens(b, 1, Controls(logit_bias=np.where(np.arange(vocab.SIZE) == vocab.INDEX["z"], 50.0, 0.0))) == ["z"]
    b.step(Controls(ablation=Ablation({0: list(range(32))}, "silence")))
    assert float(b.readout.h[0].abs().max()) == 0.0


def test_readout_has_every_layer(small_model):
    s = Stepper(small_model, voices=2, seed=0)
    s.force(PROMPT)
    s.step()
    r = s.readout
    assert len(r.h) == len(r.c) == 3
    assert r.h[0].shape == (2, 32) and r.probs.shape == (2, 137)
    assert torch.allclose(r.probs.sum(1), torch.ones(2), atol=1e-5)


def test_force_per_voice_and_partial_reset(small_model):
    s = Stepper(small_model, voices=2, seed=0)
    s.force([PROMPT, ["<s>", "M:6/8", "K:Cdor"]])
    s.step()
    h_before = s.readout.h[2][1].clone()
    s.reset([0])
    s.force(PROMPT, voices=[0])
    assert torch.equal(s.readout.h[2][1], h_before)  # voice 1 untouched
    with pytest.raises(RuntimeError):
        Stepper(small_model).step()


def check_grammar(tokens):
    """Independent statement of what the guard promises about a body."""
    in_chord, last = False, "mode"
    for t in tokens:
        cls = vocab.TOKEN_CLASS[vocab.INDEX[t]]
        if cls is TokenClass.DURATION:  # never after a duration: a note's length is one token
            assert last in (TokenClass.PITCH, TokenClass.REST, TokenClass.CHORD_CLOSE), tokens
        if cls is TokenClass.BROKEN and last is TokenClass.DURATION:
            assert t in ("<", ">"), tokens  # 2> after a duration would be a second duration
        if cls in (TokenClass.BAR, TokenClass.END, TokenClass.CHORD_OPEN, TokenClass.TUPLET):
            assert not in_chord, tokens
        if last in (TokenClass.TUPLET, TokenClass.BROKEN):
            assert cls in (TokenClass.PITCH, TokenClass.REST, TokenClass.CHORD_OPEN), tokens
        assert cls not in (TokenClass.METER, TokenClass.MODE, TokenClass.START)
        if cls is TokenClass.CHORD_OPEN:
            in_chord = True
        if cls is TokenClass.CHORD_CLOSE:
            assert in_chord
            in_chord = False
        if cls is TokenClass.END:
            return
        last = cls


def test_the_guard_allows_one_duration_per_note_then_only_a_plain_broken_rhythm():
    from instrument.model.grammar import GrammarGuard

    def allowed_after(*tokens: str) -> set[str]:
        guard = GrammarGuard()
        for token in ("<s>", "M:4/4", "K:Cmaj", *tokens):
            guard.push(vocab.INDEX[token])
        mask = guard.allowed()
        return {vocab.TOKENS[i] for i in range(vocab.SIZE) if mask[i]
                and vocab.TOKEN_CLASS[i] in (TokenClass.DURATION, TokenClass.BROKEN)}

    assert allowed_after("A") == set(vocab.tokens_of(TokenClass.DURATION)) | set(vocab.tokens_of(TokenClass.BROKEN))
    assert allowed_after("A", "2") == {"<", ">"}  # A 2 2 and A /4 2< would be two lengths
    assert allowed_after("[", "C", "2") == set()


def test_grammar_guard_keeps_a_random_model_readable():
    model = make_model(seed=3)
    off = Stepper(model, voices=8, seed=1)
    on = Stepper(model, voices=8, seed=1)
    for s in (off, on):
        s.force(PROMPT)
    off_bodies = [[] for _ in range(8)]
    on_bodies = [[] for _ in range(8)]
    for _ in range(150):
        for bodies, s, controls in ((off_bodies, off, PLAIN), (on_bodies, on, Controls(guard=True))):
            for v, t in enumerate(s.step(controls)):
                bodies[v].append(vocab.TOKENS[t])
    for body in on_bodies:
        check_grammar(body)
    with pytest.raises(AssertionError):  # the unguarded random model does break the rules
        for body in off_bodies:
            check_grammar(body)


def test_the_header_is_drawn_at_temperature_1_whatever_the_body_is_played_at():
    """One rule (model/header.py) for live play and generate: tune k's meter and mode come from its
    own generator at temperature 1, so the body's temperature changes the body only."""
    from instrument.model.generate import generate_tunes

    model = make_model(hidden=24, seed=4)
    greedy = generate_tunes(model, 6, temperature=0.0, seed=7, max_tokens=20, threads=1)
    wild = generate_tunes(model, 6, temperature=3.0, seed=7, max_tokens=20, threads=1)
    assert [(t.meter, t.mode) for t in greedy] == [(t.meter, t.mode) for t in wild]
    assert len({(t.meter, t.mode) for t in greedy}) > 1  # a variety of frames even when greedy
    assert [t.body for t in greedy] != [t.body for t in wild]


ENSEMBLE = [  # two voices, each with its own temperature, stimulation and ablation
    Controls(temperature=0.6, stimulation=Stimulation.seed_two_hot(0.35), ablation=Ablation({2: [0, 3, 7, 20]}, "output")),
    Controls(temperature=1.4, stimulation=Stimulation.tokens(["E", "G"], 0.2, sampled_weight=0.8),
             ablation=Ablation({1: [4, 5, 6]}, "silence"), guard=True),
]


@pytest.mark.parametrize("backend", ["fast", "torch"])
def test_each_voice_with_its_own_controls_plays_what_a_one_voice_stepper_plays_with_them(small_model, backend):
    """An ensemble's voices as rows of one stepper: voice v, stepped with its own Controls among
    another voice's, gives the tokens and state of a one-voice stepper with those controls (its
    generators given the same seed): bit for bit on the fast path, which sums every voice in the
    same order, within float32 rounding on the torch path (its products change order with the batch)."""
    if backend == "fast":
        from instrument.model import fast_step
        if not fast_step.available():
            pytest.skip("fast kernel unavailable on this machine")
    tolerance = 0.0 if backend == "fast" else 1e-4  # torch: rounding grows to ~1e-5 over 60 steps of this lively model
    pair = Stepper(small_model, voices=2, seed=0, backend=backend)
    alone = [Stepper(small_model, voices=1, seed=0, backend=backend) for _ in ENSEMBLE]
    for v, s in enumerate(alone):
        pair.reseed(v, 40 + v)
        s.reseed(0, 40 + v)
    for s in (pair, *alone):
        s.force(PROMPT, controls=ENSEMBLE if s is pair else ENSEMBLE[alone.index(s)])
    for step in range(60):
        stepped = [1] if step % 7 == 3 else [0, 1]  # now and then only voice 1 steps (as a batch whose other tune ended)
        tokens = dict(zip(stepped, pair.step(ENSEMBLE, voices=None if len(stepped) == 2 else stepped)))
        for v in stepped:
            s = alone[v]
            assert int(s.step(ENSEMBLE[v])[0]) == int(tokens[v]), f"voice {v} at step {step}"
            for layer in range(3):
                np.testing.assert_allclose(pair.readout.h[layer][v].numpy(), s.readout.h[layer][0].numpy(),
                                           atol=tolerance, rtol=0)
            np.testing.assert_allclose(pair.readout.sampling[v].numpy(), s.readout.sampling[0].numpy(),
                                       atol=tolerance, rtol=0)
        assert float(pair.readout.h[1][1, [4, 5, 6]].abs().max()) == 0.0  # voice 1's silence
        assert float(pair.readout.h[1][0, [4, 5, 6]].abs().max()) > 0.0  # is not voice 0's


def test_per_voice_controls_can_fail_this_test(small_model):
    """The comparison above is not vacuous: a voice stepped with the other voice's controls parts
    from the one-voice run within a few steps."""
    pair = Stepper(small_model, voices=2, seed=0)
    alone = Stepper(small_model, voices=1, seed=0)
    pair.reseed(0, 40)
    alone.reseed(0, 40)
    for s in (pair, alone):
        s.force(PROMPT)
    swapped = [ENSEMBLE[1], ENSEMBLE[0]]
    differ = False
    for _ in range(30):
        a = int(pair.step(swapped)[0])
        b = int(alone.step(ENSEMBLE[0])[0])
        differ |= a != b or not torch.allclose(pair.readout.h[2][0], alone.readout.h[2][0], atol=1e-6)
    assert differ


def test_step_takes_one_controls_or_one_per_voice(small_model):
    s = Stepper(small_model, voices=3, seed=0)
    s.force(PROMPT)
    with pytest.raises(ValueError, match="one per voice"):
        s.step([PLAIN, PLAIN])
    with pytest.raises(ValueError, match="temperature"):
        Controls(temperature=float("nan"))
    with pytest.raises(ValueError, match="one value per token"):
        Controls(logit_bias=np.zeros(5))
    bias = np.zeros(vocab.SIZE)
    controls = Controls(logit_bias=bias)
    bias[0] = 99.0  # the caller's array is not the controls' (they are immutable)
    assert controls.logit_bias[0] == 0.0 and not controls.logit_bias.flags.writeable
    assert s.step([PLAIN] * 3).shape == (3,)
