"""The seeds' analyses on our model: window facts, spectra, rankings, set files, ablation, plots, taps."""

from __future__ import annotations

import json
import threading
import time

import matplotlib.image
import numpy as np
import pytest
import torch

from instrument.model import checkpoint, vocab

from instrument.live import steering
from instrument.analysis import ablate, plots, spectra
from instrument.analysis.record import ActivationRecording, record
from instrument.analysis.taps import ActivityTap, OscPublisher, measure_cost, osc_messages
from instrument.model.folkrnn_import import params_from_model
from instrument.model.generate import generate_tunes
from instrument.model.reference import NumpyFolkRNN
from instrument.model.stepper import Readout
from instrument.music.tunes import Tune
from tests.helpers import make_model, run_cli
from bench.harness.midi import wait_for

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_MAGIC, path
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 0.01  # not a blank canvas


# -- 3. window facts -------------------------------------------------------------------------
def test_window_facts_for_length_147_match_the_seed():
    hann, rect = spectra.window_facts("hann", 147), spectra.window_facts("rect", 147)
    # first sidelobe: Hann more than 30 dB down, rectangular about 13 dB (the seed's text says 12)
    assert hann.first_sidelobe_db < -30
    assert -14 < rect.first_sidelobe_db < -12
    # main lobe (twice the -6 dB frequency): Hann about 0.014, rectangular about 0.008 cycles/step,
    # Hann a little less than twice as wide
    assert hann.main_lobe_width == pytest.approx(0.014, abs=0.0007)
    assert rect.main_lobe_width == pytest.approx(0.008, abs=0.0007)
    assert 1.5 < hann.main_lobe_width / rect.main_lobe_width < 2.0
    # the -6 dB point really is where the zero-padded spectrum crosses -6 dB
    freqs, db = spectra.window_magnitude_db("hann", 147)
    assert np.interp(hann.half_width_6db, freqs, db) == pytest.approx(-6.0, abs=0.01)
    assert hann.first_null == pytest.approx(2 / 146, rel=0.01)  # Hann's first null: 2 bins of its N - 1
    assert rect.first_null == pytest.approx(1 / 147, rel=0.01)


@pytest.mark.parametrize(
    "window, period, support, sidelobes",
    [  # the seed's window facts (docs/design.md §3), rounded
        ("hann", 8.8, (9.4, 8.3), (10.2, 7.7)),
        ("hann", 18, (21, 16), (25, 14)),
        ("hann", 36, (48, 28), (85, 23)),
        ("rect", 8.8, (9.1, 8.5), (9.6, 8.0)),
        ("rect", 18, (19, 17), (22, 15)),
        ("rect", 36, (42, 31), (56, 26)),
    ],
)
def test_main_lobe_support_and_sidelobe_locations_match_the_seeds_tables(window, period, support, sidelobes):
    facts = spectra.window_facts(window, 147)
    for ours, printed in zip(facts.support(period) + facts.sidelobes_at(period), support + sidelobes):
        digit = 0.1 if printed < 10 else 1.0  # the seed prints two significant figures
        assert ours == pytest.approx(printed, abs=1.5 * digit)


def test_dc_sidelobes_match_the_seed():
    assert spectra.window_facts("hann").sidelobes_at(np.inf)[1] == pytest.approx(63, rel=0.03)
    assert spectra.window_facts("rect").sidelobes_at(np.inf)[1] == pytest.approx(100, rel=0.04)


# -- spectra of sequences with known periods -------------------------------------------------
def synthetic_recording(lengths=(147, 180, 120), hidden=6, seed=0) -> ActivationRecording:
    """Layer 1: unit 0 period 9, unit 1 period 4.5, unit 2 noise, unit 3 weak period 9 in noise,
    unit 4 constant, unit 5 period 36. Layer 2: all noise. Output probs: noise."""
    rng = np.random.default_rng(seed)
    parts = []
    for n in lengths:
        t = np.arange(n)
        phase = rng.uniform(0, 2 * np.pi)
        l1 = np.stack([
            np.cos(2 * np.pi * t / 9 + phase),
            np.cos(2 * np.pi * t / 4.5 + phase),
            rng.normal(size=n),
            0.6 * np.cos(2 * np.pi * t / 9) + rng.normal(scale=0.5, size=n),
            np.full(n, 0.7),
            np.cos(2 * np.pi * t / 36),
        ], axis=1)[:, :hidden]
        l2 = rng.normal(size=(n, hidden))
        parts.append((l1, l2))
    h = np.stack([np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])]).astype(np.float32)
    total = sum(lengths)
    probs = rng.dirichlet(np.ones(vocab.SIZE), size=total).astype(np.float32)
    return ActivationRecording(
        tokens=np.zeros(total, dtype=np.int16), offsets=np.concatenate([[0], np.cumsum(lengths)]),
        h=h, c=h.copy(), probs=probs, meters=["4/4"] * len(lengths), modes=["maj"] * len(lengths),
        ended=np.ones(len(lengths), dtype=bool), meta={"model": "synthetic"},
    )


def test_a_period_9_sequence_puts_its_power_in_the_bar_band():
    t = np.arange(147)
    for window in spectra.WINDOWS:
        power = spectra.power_spectra(np.cos(2 * np.pi * t / 9), window)
        freqs = spectra.frequencies(power.shape[0] * 2 - 2)
        assert 1 / freqs[np.argmax(power[:, 0])] == pytest.approx(9, abs=0.05)
        share = spectra.band_share(power[:, 0], freqs)
        assert share > (0.5 if window == "hann" else 0.35)
        other = spectra.band_share(spectra.power_spectra(np.cos(2 * np.pi * t / 4.5), window)[:, 0], freqs)
        assert other < 0.01
    # Hann leaks less: a strong period-4.5 component barely reaches the 9-step band
    mix = np.cos(2 * np.pi * t / 4.5) * 10 + np.cos(2 * np.pi * t / 9)
    shares = {w: spectra.band_share(spectra.power_spectra(mix, w)[:, 0], freqs) for w in spectra.WINDOWS}
    assert shares["hann"] > 0  # the real 9-step part is found either way


def test_band_share_hardly_depends_on_zero_padding():
    t = np.arange(147)
    x = np.cos(2 * np.pi * t / 9) + 0.3 * np.cos(2 * np.pi * t / 3)
    shares = []
    for nfft in (512, 2048, 8192):
        power = spectra.power_spectra(x, "hann", nfft)
        shares.append(float(spectra.band_share(power[:, 0], spectra.frequencies(nfft))))
    assert max(shares) - min(shares) < 0.03 * max(shares)
    with pytest.raises(Exception):
        spectra.power_spectra(x, "hann", 64)  # shorter than the sequence


def test_spectra_of_a_recording_rank_units_by_bar_band_share():
    rec = synthetic_recording()
    result = spectra.analyze(rec)
    share = result.share[0]
    assert share[0] > 0.5 and share[3] > 0.05
    assert share[1] < 0.01 and share[4] < 0.001 and share[5] < 0.01
    order = list(result.ranking(1))
    assert order[:2] == [0, 3]
    assert result.threshold_units(1, 0.05) == [0, 3]
    assert result.share[1].max() < 0.1  # layer 2 is noise: about band width / 0.5 of its power
    # the per-layer mean spectrum and its standard error
    mean, sem = result.layer_mean(1)
    assert mean.shape == sem.shape == result.freqs.shape and (sem >= 0).all()
    peak = np.argmax(np.where(result.freqs > 0.05, mean, 0))
    assert 1 / result.freqs[peak] == pytest.approx(9, abs=0.1)
    # a tune too short to analyse is skipped
    short = synthetic_recording(lengths=(147, 10))
    assert spectra.analyze(short).tunes == [0]


def test_set_files_hold_every_unit_in_rank_order_and_the_seed_thresholds(tmp_path):
    result = spectra.analyze(synthetic_recording())
    paths = spectra.write_sets(result, tmp_path)
    data = json.loads((tmp_path / "periodic-layer1.json").read_text())
    assert data["layer"] == 1 and data["units"][:2] == [0, 3] and sorted(data["units"]) == list(range(6))
    assert data["thresholds"]["0.05"] == [0, 3] and set(data["thresholds"]) == {"0.05", "0.04", "0.035"}
    assert data["share"] == sorted(data["share"], reverse=True)
    assert "criterion" in data and data["model"] == "synthetic"
    five = json.loads((tmp_path / "periodic-5pct-layer1.json").read_text())
    assert five["units"] == [0, 3] and five["threshold"] == 0.05
    assert (tmp_path / "periodic-3p5pct-layer2.json") in paths
    orders = steering.UnitOrders(6, None)
    assert orders.get(str(tmp_path / "periodic-5pct-layer1.json"), 1) == (0, 3)


# -- 1, 2: record, then spectra -> set files -> the live instrument's lookup ------------------
def test_record_holds_the_generated_tunes_and_the_reference_networks_states():
    model = make_model(seed=3)
    rec = record(model, 5, seed=7, max_tokens=120, batch=2)
    tunes = generate_tunes(model, 5, seed=7, max_tokens=120, batch=2)
    assert [t.body for t in rec.tunes()] == [t.body for t in tunes]
    assert [t.meter for t in rec.tunes()] == [t.meter for t in tunes]
    assert list(rec.ended) == [t.ended for t in tunes]
    assert rec.h.shape == (3, rec.steps, 32) and rec.probs.shape == (rec.steps, vocab.SIZE)
    assert rec.lengths().tolist() == [len(t.body) + t.ended for t in tunes]
    # step t holds the state after feeding the token before it, and the distribution it was drawn from
    ref = NumpyFolkRNN(params_from_model(model), vocab.INDEX)
    tune = 1
    prompt = [vocab.START, vocab.meter_token(rec.meters[tune]), vocab.mode_token(rec.modes[tune])]
    for token in prompt[:-1]:
        ref.step(token)
    fed = [prompt[-1]] + rec.tune_tokens(tune)[:-1]
    for t, token in enumerate(fed):
        probs = ref.step(token)
        np.testing.assert_allclose(rec.probs[rec.span(tune)][t], probs, atol=1e-5)
        for layer in range(3):
            np.testing.assert_allclose(rec.sequence(tune, layer + 1, "h")[t], ref.h[layer], atol=2e-3)  # float16
            np.testing.assert_allclose(rec.sequence(tune, layer + 1, "c")[t], ref.c[layer], atol=2e-2 * max(1, np.abs(ref.c[layer]).max()))


def test_record_spectra_install_and_the_live_instrument_reads_the_sets(tmp_path, small_checkpoint):
    run = tmp_path / "run.npz"
    out = tmp_path / "spectra"
    result = run_cli("analyze", "record", "--model", str(small_checkpoint), "-n", "6", "--seed", "3",
                     "--max-tokens", "200", "--out", str(run))
    assert result.returncode == 0, result.stderr
    rec = ActivationRecording.load(run)
    assert rec.n_tunes == 6 and rec.meta["model"] == str(small_checkpoint) and rec.meta["seed"] == 3
    result = run_cli("analyze", "spectra", str(run), "--out", str(out), "--install")
    assert result.returncode == 0, result.stderr
    assert "layer 3:" in result.stdout and ">=5%" in result.stdout
    for name in ["heatmap-layer1", "heatmap-layer3", "unit-spectra-layer2", "mean-spectra", "output", "windows"]:
        assert_png(out / f"{name}.png")
    ranking = json.loads((out / "ranking.json").read_text())
    assert [entry["layer"] for entry in ranking["layers"]] == [1, 2, 3]
    ranked = ranking["layers"][2]["units"]
    assert sorted(ranked) == list(range(32))
    with np.load(out / "spectra.npz") as z:
        assert z["power"].shape[:2] == (3, 32) and z["share"].shape == (3, 32)
        assert list(np.argsort(-z["share"][2], kind="stable")) == ranked
    for directory in (out, small_checkpoint.with_suffix(".ablation")):
        for layer in (1, 2, 3):
            data = json.loads((directory / f"periodic-layer{layer}.json").read_text())
            assert data["layer"] == layer and data["model"] == str(small_checkpoint)
    # the live instrument finds the installed set by name, and a depth sweeps it in rank order
    orders = steering.UnitOrders(32, str(small_checkpoint))
    order = orders.get("periodic", 3)
    assert list(order) == ranked
    assert steering.UnitOrders(32, None).get(str(out / "periodic-layer3.json"), 3) == order
    for depth, count in ((0.0, 0), (0.25, 8), (0.5, 16), (1.0, 32)):
        cut = steering.ablation(order, depth, 3, "output")
        assert cut.units.get(2, []) == sorted(ranked[:count])
    # spectra of a missing recording is a one-line error
    result = run_cli("analyze", "spectra", str(tmp_path / "nope.npz"), "--out", str(out))
    assert result.returncode == 2 and "not found" in result.stderr


# -- 4. the ablation experiment ---------------------------------------------------------------
def test_tune_metrics_count_bars_endings_and_pitches():
    good = Tune("4/4", "maj", "C D E F G A B c | c B A G F E D C |".split(), ended=True)
    bad = Tune("4/4", "maj", "C D E F G A B c | c B A | ^F E D C D E F G |".split(), ended=False)
    m = ablate.tune_metrics([good])
    assert m["count_accuracy"] == 1.0 and m["end_rate"] == 1.0 and m["in_mode"] == 1.0 and m["bars"] == 2
    m = ablate.tune_metrics([good, bad])
    assert m["bars"] == 5 and m["count_accuracy"] == pytest.approx(4 / 5)
    assert m["end_rate"] == 0.5
    assert m["in_mode"] == pytest.approx(1 - 2 / 35)  # ^F holds for the later F of its bar
    assert m["step_share"] > 0.8


def test_ablation_cuts_change_the_tunes_and_random_draws_are_seeded():
    model = make_model(seed=1)
    hidden = model.config.hidden
    order = list(range(hidden))[::-1]
    rows = ablate.run_ablation(model, 3, {"periodic": order, "random": None}, sizes=(0, hidden), n=4, seed=2,
                               draws=2, max_tokens=80)
    by = {(r["set"], r["size"]): r for r in rows}
    assert by[("periodic", 0)]["tokens_mean"] == by[("random", 0)]["tokens_mean"]
    assert by[("periodic", hidden)]["tokens_mean"] != by[("periodic", 0)]["tokens_mean"]  # every unit cut: the bias alone
    assert by[("random", hidden)]["draws"] == 2
    assert ablate.random_order(hidden, 3, 2, 0) == ablate.random_order(hidden, 3, 2, 0)
    assert ablate.random_order(hidden, 3, 2, 0) != ablate.random_order(hidden, 3, 2, 1)
    with pytest.raises(Exception):
        ablate.run_ablation(model, 3, {"random": None}, sizes=(0, hidden + 1), n=1)


def test_analyze_ablate_json_gives_both_sets_at_every_size(tmp_path, small_checkpoint):
    sizes = [0, 4, 8, 16]
    result = run_cli("analyze", "ablate", "--model", str(small_checkpoint), "--layer", "3", "--sets", "periodic,random",
                     "--sizes", ",".join(map(str, sizes)), "-n", "6", "--seed", "1", "--draws", "2",
                     "--max-tokens", "150", "--json", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["set"], r["size"]) for r in rows] == [(s, n) for s in ("periodic", "random") for n in sizes]
    for row in rows:
        for key in ablate.REQUIRED_KEYS + ("in_mode", "pitch_sd", "draws"):
            assert key in row
        assert row["count_accuracy"] is None or 0 <= row["count_accuracy"] <= 1
        assert 0 <= row["end_rate"] <= 1
        assert row["draws"] == (2 if row["set"] == "random" and row["size"] else 1)
    assert rows[0]["count_accuracy"] == rows[len(sizes)]["count_accuracy"]  # size 0: the same untouched model
    assert_png(tmp_path / "ablation-layer3.png")
    assert json.loads((tmp_path / "ablation-layer3.json").read_text()) == rows


def test_analyze_ablate_table_puts_the_sets_side_by_side(tmp_path, small_checkpoint):
    sets = tmp_path / "sets"
    spectra.write_sets(spectra.analyze(record(checkpoint.load(small_checkpoint)[0], 4, seed=1, max_tokens=150)), sets)
    result = run_cli("analyze", "ablate", "--model", str(small_checkpoint), "--sizes", "0,8", "-n", "3", "--seed", "1",
                     "--draws", "2", "--max-tokens", "100", "--periodic", str(sets / "periodic-layer3.json"),
                     "--out", str(tmp_path), "--no-plots")
    assert result.returncode == 0, result.stderr
    header, *body = result.stdout.strip().splitlines()[1:]
    assert "periodic" in header and "random (mean of 2)" in header and header.index("periodic") < header.index("random")
    assert [line.split("|")[0].strip() for line in body[2:]] == ["0", "8"]
    assert not (tmp_path / "ablation-layer3.png").exists()
    # a set for another layer, or sizes beyond the layer, are one-line errors
    bad = run_cli("analyze", "ablate", "--model", str(small_checkpoint), "--layer", "2", "--sizes", "0,4", "-n", "1",
                  "--periodic", str(sets / "periodic-layer3.json"), "--out", str(tmp_path))
    assert bad.returncode == 2 and "layer 3" in bad.stderr
    bad = run_cli("analyze", "ablate", "--model", str(small_checkpoint), "--sizes", "0,64", "-n", "1", "--out", str(tmp_path))
    assert bad.returncode == 2 and "0..32" in bad.stderr


# -- 5. plots ------------------------------------------------------------------------------
def test_plots_are_png_files(tmp_path):
    rec = synthetic_recording()
    result = spectra.analyze(rec)
    paths = [
        plots.heatmap(rec, 0, 1, tmp_path / "h.png"),
        plots.heatmap(rec, 1, 2, tmp_path / "c.png", state="c"),
        plots.mean_spectra(result, tmp_path / "m.png"),
        plots.unit_spectra(result, 1, tmp_path / "u.png"),
        plots.output_distribution(rec, 2, tmp_path / "o.png"),
        plots.output_distribution(rec, 1, tmp_path / "o50.png", steps=50),
        plots.heatmap(rec, 1, 1, tmp_path / "h50.png", steps=50),
        plots.windows(tmp_path / "w.png"),
        plots.ablation_chart(
            [{"set": "periodic", "size": 0, "count_accuracy": 1.0, "end_rate": 1.0, "in_mode": 0.9},
             {"set": "periodic", "size": 4, "count_accuracy": 0.5, "end_rate": 0.8, "in_mode": 0.7},
             {"set": "random", "size": 4, "count_accuracy": 0.9, "count_accuracy_sd": 0.05, "end_rate": 0.9, "in_mode": 0.8}],
            tmp_path / "a.png", "title"),
    ]
    for path in paths:
        assert_png(path)


# -- 6. live taps --------------------------------------------------------------------------
def readout(hs, logits=None):
    hs = [torch.as_tensor(np.asarray(h, dtype=np.float32))[None] for h in hs]
    logits = torch.zeros(1, vocab.SIZE) if logits is None else torch.as_tensor(logits, dtype=torch.float32)[None]
    return Readout(hs, [h.clone() for h in hs], logits, torch.softmax(logits, -1))


def test_tap_decimates_by_count_and_by_rate():
    tap = ActivityTap(2, 8, every=4, max_rate=None)
    r = readout([np.zeros(8), np.zeros(8)])
    published = [tap(r, 3) is not None for _ in range(100)]
    assert sum(published) == 25 and tap.published == 25 and published[3] and not published[0]
    assert tap.latest.step == 100 and tap.latest.token == vocab.TOKENS[3]
    now = [0.0]
    tap = ActivityTap(2, 8, every=1, max_rate=100, clock=lambda: now[0])
    for _ in range(100):  # one call a millisecond, at most 100 summaries a second: one in ten
        tap(r)
        now[0] += 0.001
    assert 9 <= tap.published <= 11


def test_tap_summary_top_units_entropy_and_bar_band():
    window = 36
    tap = ActivityTap(3, 16, every=1, max_rate=None, top_k=3, window=window)
    logits = np.random.default_rng(0).normal(size=vocab.SIZE)
    noise = np.random.default_rng(1)
    seqs = []
    for t in range(60):
        l1 = np.cos(2 * np.pi * t / 9) * np.linspace(0.1, 1, 16)  # every unit at the bar period
        l2 = np.cos(2 * np.pi * t / 4.5) * np.ones(16)  # every unit at twice the bar rate
        l3 = noise.normal(scale=0.3, size=16)
        l3[[5, 9, 2]] = [0.99, -0.98, 0.97]  # the three most active, in this order
        seqs.append(l1)
        activity = tap(readout([l1, l2, l3], logits), np.array([7]))
    p = torch.softmax(torch.tensor(logits), -1).numpy()
    assert activity.entropy == pytest.approx(float(-(p * np.log(p)).sum()), rel=1e-4)
    assert activity.token == vocab.TOKENS[7]
    l1, l2, l3 = activity.layers
    assert l3.top_units == (5, 9, 2) and l3.top_values == pytest.approx((0.99, -0.98, 0.97), abs=1e-6)
    assert l1.mean_abs == pytest.approx(float(np.abs(seqs[-1]).mean()), rel=1e-5)
    assert l1.bar_band == pytest.approx(1.0, abs=0.05) and l2.bar_band < 0.05 and l3.bar_band < 0.3
    # the same number as the offline analysis of the last ``window`` steps (mean removed, Hann, 256 points)
    x = np.stack(seqs[-window:])
    power = spectra.power_spectra(x, "hann", 256, detrend=True)
    offline = spectra.band_share(power.sum(axis=1), spectra.frequencies(256))  # power-weighted over units
    assert l1.bar_band * tap.bar_reference == pytest.approx(offline, rel=1e-3)
    assert 0.05 < tap.bar_reference < 0.5


def test_tap_never_waits_for_consumers():
    tap = ActivityTap(3, 64, every=1, max_rate=None)
    r = readout([np.random.default_rng(i).normal(size=64) for i in range(3)])
    unread = tap.subscribe(maxlen=16)  # nobody reads this one: oldest summaries are dropped

    release = threading.Event()

    class StuckClient:  # a consumer that hangs on its first message
        sent = 0

        def send_message(self, address, args):
            StuckClient.sent += 1
            release.wait(10)

    publisher = OscPublisher(tap, client=StuckClient(), poll=0.001, maxlen=8).start()
    try:
        for _ in range(500):
            tap(r, 1)
        assert wait_for(lambda: StuckClient.sent >= 1)  # the consumer took a message, and hangs on it
        for _ in range(500):
            tap(r, 1)
        # every summary was published while the consumer hung on its first message: nothing waited for it
        assert StuckClient.sent == 1 and tap.published == 1000
        assert len(unread) == 16 and unread[-1].step == 1000
        assert len(publisher.queue) <= 8
    finally:
        release.set()
        publisher.stop()
    assert publisher.queue not in tap._queues


def test_osc_messages_reach_a_real_udp_server():
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import ThreadingOSCUDPServer

    received = []
    dispatcher = Dispatcher()
    dispatcher.map("/activity/*", lambda address, *args: received.append((address, args)))
    server = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    tap = ActivityTap(2, 16, every=2, max_rate=None, top_k=2)
    publisher = OscPublisher(tap, "127.0.0.1", server.server_address[1], poll=0.002).start()
    try:
        for t in range(10):
            tap(readout([np.full(16, 0.1 * t), np.linspace(-1, 1, 16)]), np.array([vocab.INDEX["|"]]))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len({a for a, _ in received}) < 9:
            time.sleep(0.01)
    finally:
        publisher.stop()
        server.shutdown()
        server.server_close()
    addresses = {a for a, _ in received}
    expected = {"/activity/step", "/activity/token", "/activity/entropy"} | {
        f"/activity/layer/{l}/{k}" for l in (1, 2) for k in ("mean", "top", "bar")
    }
    assert expected <= addresses
    last = {a: args for a, args in received}
    assert last["/activity/token"] == ("|",)
    assert isinstance(last["/activity/entropy"][0], float)
    top = last["/activity/layer/2/top"]
    assert [type(v) for v in top] == [int, float, int, float] and set(top[::2]) == {0, 15}
    assert osc_messages(tap.latest)[0] == ("/activity/step", [tap.latest.step])


@pytest.mark.realtime
def test_tap_cost_in_a_model_loop_is_measured():
    result = measure_cost(make_model(), steps=200, every=4, max_rate=None)
    assert result["published"] == 50
    assert 0 < result["tap_median_us"] < 5000  # generous: the machine is shared
    assert result["publish_median_us"] >= result["tap_median_us"] * 0.5
