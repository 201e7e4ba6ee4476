"""``run.py analyze``: the seeds' experiments on our model (record, spectra, ablate, tap-cost).

::

    run.py analyze record  [--model M] -n N --seed S --out run.npz
    run.py analyze spectra run.npz --out DIR [--window hann|rect] [--nfft K] [--band 8.7,9.3] [--install]
    run.py analyze ablate  [--model M] --layer 3 --sets periodic,random --sizes 0,48,96,138,169 -n N --seed S [--json]
    run.py analyze tap-cost [--model M] [--steps 2000] [--every 4]

Layers are numbered from 1 (nearest the input). See ``instrument/analysis`` for the file formats.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from instrument.model.catalog import MODEL_HELP
from instrument.model import checkpoint
from instrument.cli import fail, seed
from instrument.errors import UsageError

HELP = "the seeds' experiments on a model: record activations, spectra and unit rankings, ablation"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="{record,spectra,ablate,tap-cost}", required=True)

    p = sub.add_parser("record", help="generate tunes, recording each step's token, every layer's h and c, and the output distribution")
    _model_options(p)
    p.add_argument("-n", "--n", type=int, default=16, help="how many tunes (default 16)")
    p.add_argument("--out", required=True, help="the recording to write (.npz)")
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16", help="storage of h and c (default float16)")

    p = sub.add_parser("spectra", help="spectra of hidden-state sequences, bar-band unit rankings, ablation-set files, plots")
    p.add_argument("recording", help="a recording from 'analyze record'")
    p.add_argument("--out", required=True, help="directory for spectra.npz, ranking.json, the set files and the PNG plots")
    p.add_argument("--window", choices=("hann", "rect"), default="hann", help="analysis window (default hann)")
    p.add_argument("--nfft", type=int, help="zero-padded transform length (default: a power of two >= 4x the longest tune, >= 1024)")
    p.add_argument("--band", default="8.7,9.3", help="band of periods in steps for the ranking (default 8.7,9.3: a 4/4 bar)")
    p.add_argument("--state", choices=("h", "c"), default="h", help="analyse h (default) or the cell state c")
    p.add_argument("--detrend", action="store_true", help="remove each sequence's mean first (no DC)")
    p.add_argument("--min-length", type=int, default=16, help="skip tunes shorter than this many steps (default 16)")
    p.add_argument("--name", default="periodic", help="set name of the ranking files (default periodic: the name patches use)")
    p.add_argument("--install", action="store_true", help="also write the set files beside the model: <model>.ablation/")
    p.add_argument("--model", help="with --install: the model whose .ablation/ folder gets the sets (default: the recorded one)")
    p.add_argument("--tune", type=int, default=0, help="tune shown in the heatmaps and the output plot (default 0)")
    p.add_argument("--plot-steps", type=int, default=300, help="steps shown in the heatmaps and the output plot (default 300; 0: all)")
    p.add_argument("--no-plots", action="store_true", help="write no PNG files")

    p = sub.add_parser("ablate", help="the seed ablation experiment (docs/design.md §3): cut bar-periodic or random units, measure counting")
    _model_options(p)
    p.add_argument("--layer", type=int, default=3, help="layer whose units are cut, 1-based (default 3)")
    p.add_argument("--sets", default="periodic,random", help="comma-separated unit sets: periodic, random, or set files/names (default periodic,random)")
    p.add_argument("--sizes", default="0,48,96,138,169", help="numbers of units cut (default 0,48,96,138,169: the seed's cuts)")
    p.add_argument("-n", "--n", type=int, default=32, help="tunes per set and size (default 32)")
    p.add_argument("--draws", type=int, default=3, help="random sets drawn per size, averaged (default 3)")
    p.add_argument("--periodic", help="ablation-set file with the periodic ranking (default: rank from a fresh recording, same model and seed)")
    p.add_argument("--record-n", type=int, help="tunes recorded to rank units when no --periodic file is given (default: -n, at least 16)")
    p.add_argument("--cut", choices=("output", "silence"), default="output",
                   help="output: cut the units' outgoing connections (the seed experiment, docs/design.md §3); silence: hold h at 0")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of the table")
    p.add_argument("--out", default=".", help="directory for the chart and the rows (default: the current directory)")
    p.add_argument("--no-plots", action="store_true", help="write no chart")

    p = sub.add_parser("tap-cost", help="time the live activity tap in a model-thread loop (microseconds per call)")
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--steps", type=int, default=2000, help="steps to time (default 2000)")
    p.add_argument("--every", type=int, default=4, help="summarise every k-th step (default 4)")
    p.add_argument("--max-rate", type=float, default=0.0, help="and at most this many times a second (default 0: no limit)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--seed", type=seed, default=0, help="random seed (default 0): same arguments, same tunes")
    p.add_argument("--meter", help="meter of every tune, e.g. 4/4 (default: the model chooses)")
    p.add_argument("--mode", help="mode of every tune: maj, min, dor or mix (default: the model chooses)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1)")
    p.add_argument("--max-tokens", type=int, default=600, help="cut a tune off after this many tokens (default 600)")
    p.add_argument("--batch", type=int, default=64, help="tunes generated together as one batch (default 64)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: per-step products are small, and shared cores make more threads slower)")


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, getattr(args, "threads", 1)))
    return {"record": _record, "spectra": _spectra, "ablate": _ablate, "tap-cost": _tap_cost}[args.action](args)


def _load(args) -> tuple:
    from instrument.model.generate import parse_meter, parse_mode

    if args.temperature < 0:
        fail(f"--temperature must be 0 or more, not {args.temperature}")
    if args.max_tokens < 1 or args.batch < 1:
        fail("--max-tokens and --batch must be at least 1")
    meter = parse_meter(args.meter) if args.meter else None
    mode = parse_mode(args.mode) if args.mode else None
    model, _, source = checkpoint.load_or_default(args.model)
    return model, source, meter, mode


def _record(args) -> int:
    from instrument.analysis.record import record

    model, source, meter, mode = _load(args)
    if args.n < 1:
        fail("-n must be at least 1")
    start = time.perf_counter()
    rec = record(model, args.n, args.seed, meter, mode, args.temperature, args.max_tokens, args.batch,
                 dtype=args.dtype, model_name=source)
    try:
        path = rec.save(args.out)
    except OSError as error:
        fail(f"cannot write {args.out!r}: {error.strerror}")
    print(f"recorded {rec.n_tunes} tunes, {rec.steps} steps, {rec.layers} layers x {rec.hidden} units "
          f"({int(rec.ended.sum())} ended) in {time.perf_counter() - start:.1f} s -> {path}", file=sys.stderr)
    return 0


def _parse_band(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        fail(f"--band wants two periods in steps like 8.7,9.3, not {text!r}")
    if not 0 < lo < hi:
        fail(f"--band wants 0 < shortest < longest period, not {text!r}")
    return lo, hi


def _spectra(args) -> int:
    from instrument.analysis import plots, spectra
    from instrument.live.steering import model_set_dir
    from instrument.analysis.record import ActivationRecording

    band = _parse_band(args.band)
    if args.nfft is not None and args.nfft < 8:
        fail("--nfft must be at least 8")
    if "/" in args.name or "." in args.name or not args.name:
        fail(f"--name must be a plain set name without '/' or '.', not {args.name!r}")
    rec = ActivationRecording.load(args.recording)
    result = spectra.analyze(rec, args.window, args.nfft, band, args.state, args.detrend, args.min_length)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = [result.save(out / "spectra.npz")]
        ranking = out / "ranking.json"
        ranking.write_text(json.dumps(spectra.ranking_json(result, str(args.recording)), indent=1) + "\n")
        written.append(ranking)
        written += spectra.write_sets(result, out, args.name, str(args.recording))
        if args.install:
            model_path = args.model or rec.meta.get("model")
            if not model_path or not Path(model_path).is_file():
                fail("--install needs the model file: the recording names none (or it is gone); give --model PATH")
            recorded = rec.meta.get("model") or ""
            if args.model and recorded and Path(args.model).resolve() != Path(recorded).resolve():
                print(f"note: installing sets from a recording of {recorded} beside {args.model}", file=sys.stderr)
            installed = spectra.write_sets(result, model_set_dir(model_path), args.name, str(args.recording))
            print(f"installed {len(installed)} set files in {model_set_dir(model_path)}", file=sys.stderr)
        if not args.no_plots:
            tune = args.tune if args.tune in result.tunes else result.tunes[0]
            for layer in range(1, rec.layers + 1):
                written.append(plots.heatmap(rec, tune, layer, out / f"heatmap-layer{layer}.png", args.state, args.plot_steps or None))
                written.append(plots.unit_spectra(result, layer, out / f"unit-spectra-layer{layer}.png"))
            written.append(plots.mean_spectra(result, out / "mean-spectra.png"))
            written.append(plots.output_distribution(rec, tune, out / "output.png", args.plot_steps or None))
            written.append(plots.windows(out / "windows.png", int(rec.lengths()[tune])))
    except OSError as error:
        fail(f"cannot write into {str(out)!r}: {error.strerror}")
    lo, hi = result.band
    print(f"{len(result.tunes)} tunes, {result.meta['steps']} steps, {result.window} window, nfft {result.nfft}; "
          f"units with power at periods {lo:g}-{hi:g}:")
    for layer in range(1, result.layers + 1):
        share = result.share[layer - 1]
        counts = ", ".join(f">={100 * t:g}%: {len(result.threshold_units(layer, t))}" for t in spectra.SEED_THRESHOLDS)
        top = ", ".join(f"{int(u)} ({100 * share[u]:.1f}%)" for u in result.ranking(layer)[:5])
        print(f"  layer {layer}: {counts}; top {top}")
    print(f"wrote {len(written)} files in {out}", file=sys.stderr)
    return 0


def _parse_ints(text: str, what: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        fail(f"--{what} wants comma-separated whole numbers, not {text!r}")
    if not values:
        fail(f"--{what} is empty")
    return values


def _ablate(args) -> int:
    from instrument.live import steering
    from instrument.analysis import ablate, plots, spectra
    from instrument.analysis.record import record

    model, source, meter, mode = _load(args)
    sizes = _parse_ints(args.sizes, "sizes")
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    if not sets or len(set(sets)) != len(sets):
        fail(f"--sets wants distinct comma-separated names, not {args.sets!r}")
    if args.n < 1:
        fail("-n must be at least 1")
    hidden, layers = model.config.hidden, model.config.layers
    if not 1 <= args.layer <= layers:
        fail(f"--layer {args.layer} out of range: the model has layers 1..{layers}")
    if any(not 0 <= s <= hidden for s in sizes):
        fail(f"--sizes must lie in 0..{hidden} (layer {args.layer} has {hidden} units), not {args.sizes}")
    log = (lambda text: None) if args.json else (lambda text: print(f"  {text}", file=sys.stderr))
    orders: dict[str, list[int] | None] = {}
    unit_orders = steering.UnitOrders(hidden, source)
    for name in sets:
        if name == "random":
            orders[name] = None
        elif name == "periodic" and not args.periodic:
            n = args.record_n or max(args.n, 16)
            log(f"ranking layer {args.layer} units by bar-band power over {n} recorded tunes (seed {args.seed})")
            rec = record(model, n, args.seed, meter, mode, args.temperature, args.max_tokens, args.batch, model_name=source)
            result = spectra.analyze(rec)
            orders[name] = [int(u) for u in result.ranking(args.layer)]
        else:
            path = args.periodic if name == "periodic" else name
            orders[name] = list(_set_units(unit_orders, path, args.layer))
    rows = ablate.run_ablation(model, args.layer, orders, sizes, args.n, args.seed, args.draws, args.cut, meter, mode,
                               args.temperature, args.max_tokens, args.batch, progress=lambda t: log(f"generating: {t}"))
    out = Path(args.out)
    title = (f"{source}: layer {args.layer} ({hidden} units), {args.cut} ablation, {args.n} tunes, seed {args.seed}, "
             f"random: mean of {args.draws}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"ablation-layer{args.layer}.json").write_text(json.dumps(_clean(rows), indent=1) + "\n")
        if not args.no_plots:
            chart = plots.ablation_chart(rows, out / f"ablation-layer{args.layer}.png", title)
            if not args.json:
                print(f"chart: {chart}", file=sys.stderr)
    except OSError as error:
        fail(f"cannot write into {str(out)!r}: {error.strerror}")
    if args.json:
        json.dump(_clean(rows), sys.stdout)
        sys.stdout.write("\n")
    else:
        print(title)
        print(ablate.format_table(rows))
    return 0


def _set_units(unit_orders, name: str, layer: int) -> tuple[int, ...]:
    path = Path(name)
    if path.suffix == ".json" and path.is_file():
        try:
            data = json.loads(path.read_text())
        except ValueError as error:
            raise UsageError(f"{path}: not an ablation-set file ({error})") from None
        if isinstance(data, dict) and "layer" in data and int(data["layer"]) != layer:
            fail(f"{path} is a set for layer {data['layer']}, not layer {layer}")
    return unit_orders.get(name, layer)


def _clean(rows):
    """JSON has no NaN: write null."""
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]


def _tap_cost(args) -> int:
    from instrument.analysis.taps import measure_cost

    if args.steps < 10 or args.every < 1:
        fail("--steps must be at least 10 and --every at least 1")
    model, _, source = checkpoint.load_or_default(args.model)
    result = measure_cost(model, args.steps, every=args.every, max_rate=args.max_rate or None)
    print(json.dumps({"model": source, **result}, indent=1))
    return 0
