"""``mf bench quality``: a model against the classical baselines on the held-out real data.

For every real set in the data root (:mod:`mf_training.data.real_sets`; a set that is absent is
skipped with a note) the **test** split is scored, never a frame a model trains or is selected on
(``--split val`` scores the val split instead: the frames to choose a model change on, so that the
test split stays unseen until the change is reported):

- with LiDAR: the model in its LiDAR mode, its LiDAR prior alone (``mf prior``: the scan-line fill a
  fresh refining model outputs, so the learned part's share is visible) and the classical
  baselines (nearest, linear, IP-Basic), under the set's protocol (lidar-holdout: the same seeded
  80/20 split of every frame for every method; metric: simulated scan lines fed, dense ground
  truth scored). Per set: RMSE, MAE, AbsRel, delta1 and ms/frame of each method, the best
  classical method (lowest RMSE) and the ratio model RMSE / best classical RMSE; over all sets,
  the geometric mean of the ratios. LiDAR-only sets are scored a second time under segment-holdout
  (whole scan-line pieces held out), which measures the pixels between scan lines that lidar-holdout
  does not (its held-out points always have fed neighbours on their own line); the geometric mean
  "between lines" uses those ratios with the dense-ground-truth sets. Also per set: the Spearman
  correlation of the model's confidence with its absolute error on the scored pixels (negative: confident where it is
  right), and the median relative distance of its output from the fed LiDAR at the fed pixels.
- monocular: the model's ``i2d`` against the row prior (depth linear in the pixel row), both under
  the affine protocol (against the dense ground truth, or all LiDAR points where there is none),
  and their AbsRel ratio.

How sure a ratio is: each comes with a 90 % bootstrap interval over the set's scored frames (the frames
drawn with replacement, the same draws for the model and the best classical method, seeded so a report
is reproducible) and the count of frames on which the model beats that method; the geometric means get
an interval from the same draws, every set resampled independently. A set of one frame (Middlebury) has
a zero-width interval: the interval measures how much the result depends on which frames were picked,
not the error of any one frame. ``--reference MODEL`` also runs a second model (e.g. the shipped one) in the
same mode and reports, per set and protocol, the RMSE ratio model / reference with its interval from the
same paired draws: whether a change is better than what it replaces, beyond the choice of frames.

Prints a markdown table (stderr) and returns the JSON report; ``--out-dir`` also writes
``quality.json``, ``quality.md`` and, with ``--panels``, ``panels/<set>/<method>/<frame>.png``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from mf_training.eval.edge_alignment import EDGE_KEYS
from mf_training.eval.metrics import geometric_mean

REPORTED = ("rmse", "mae", "abs_rel", "delta1")
REFERENCE_LABEL = "reference model"  # the --reference checkpoint's row in the tables
PRIOR_LABEL = "mf prior (scan-line fill)"  # the model's own LiDAR prior, shown beside the classical methods
RESAMPLES = 2000  # bootstrap draws of a set's test frames
INTERVAL_PERCENTILES = (5.0, 95.0)  # a 90 % interval


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="default", help="checkpoint folder, or 'default' (the shipped model)")
    parser.add_argument("--reference", help="a second checkpoint (or 'default') to compare the model with, frame by "
                                            "frame (ratio model / reference per set, with its interval)")
    parser.add_argument("--split", default="test", choices=("test", "val"),
                        help="which held-out part to score (default test; val: the frames to choose changes on)")
    parser.add_argument("--mode", help="the model's LiDAR mode (default: the checkpoint's recommended mode)")
    parser.add_argument("--data-root", help="folder with the real sets (default $MF_DATA_ROOT or ../shared/data)")
    parser.add_argument("--sets", help="comma-separated subset of the real sets (default: all present)")
    parser.add_argument("--limit", type=int, help="score at most this many test frames per set (quick runs)")
    parser.add_argument("--line-every", type=int, default=1,
                        help="keep only every N-th scan line of each sweep before scoring: 2 or 4 stand for a LiDAR "
                             "with half or a quarter of the beams (default 1: the sweeps as recorded)")
    parser.add_argument("--device", default="cpu", help="torch device for the model (default cpu)")
    parser.add_argument("--no-mono", action="store_true", help="skip the monocular (i2d vs row prior) rows")
    parser.add_argument("--out-dir", help="write quality.json and quality.md here")
    parser.add_argument("--panels", action="store_true", help="with --out-dir: PNG panels of every frame and method")


def _scores(report: dict) -> dict:
    mean = report["mean"]
    return {**{k: round(mean[k], 5) for k in REPORTED}, "coverage": round(mean["coverage"], 4),
            **{k: round(mean[k], 3) for k in EDGE_KEYS if k in mean},  # dense ground truth only
            "ms": round(1000 * mean["runtime_s"], 1), "frames": mean["n_frames"]}


def _edges(scores: dict) -> str:
    """The depth-edge cell of a method's row: accuracy / completeness in pixels ('-' without dense ground truth,
    or without a predicted edge for the accuracy)."""
    if EDGE_KEYS[0] not in scores:
        return "-"
    return " / ".join("-" if np.isnan(scores[key]) else f"{scores[key]:.2f}" for key in EDGE_KEYS)


def _lidar_as_ground_truth(samples: list) -> list:
    """Samples without dense ground truth get their full LiDAR as the (sparse) affine target."""
    return [s if s.gt_depth is not None else replace(s, gt_depth=s.sparse_depth) for s in samples]


def _with_lines_every(sample, every: int):
    """``sample`` with only every ``every``-th scan line of its sweep (:func:`thin_scan_lines`); itself for 1."""
    from mf_training.train.data import thin_scan_lines

    if every == 1:
        return sample
    kept = thin_scan_lines(sample.sparse_depth, every, 0)  # (H, W) bool
    return replace(sample, sparse_depth=np.where(kept, sample.sparse_depth, 0.0).astype(np.float32))


def markdown(report: dict) -> str:
    """The per-set tables of a quality report, then the ratios."""
    thinned = f", every {report['line_every']}th scan line" if report["line_every"] > 1 else ""
    lines = [f"# mf bench quality: {report['model']} (mode {report['mode']}), {report['split']} split of each real "
             f"set{thinned}", ""]
    for name, result in report["sets"].items():
        lines += [f"## {name}: {result['frames']} {report['split']} frames, protocol {result['protocol']}",
                  f"{result['provenance']}", "",
                  "| method | RMSE m | MAE m | AbsRel % | δ1 % | coverage % | depth edges px (acc / comp) | ms/frame |",
                  "|---" * 8 + "|"]
        rows = {**result["methods"], **result.get("mono", {})}
        for label, m in rows.items():
            lines.append(f"| {label} | {m['rmse']:.3f} | {m['mae']:.3f} | {100 * m['abs_rel']:.2f} | "
                         f"{100 * m['delta1']:.1f} | {100 * m['coverage']:.1f} | {_edges(m)} | {m['ms']:.0f} |")
        lines.append("")
        summary = (f"best classical: **{result['best_classical']}**; RMSE ratio model / best classical: "
                   f"**{result['rmse_ratio']:.3f}** {_spread(result)}; confidence vs |error| Spearman "
                   f"{result['confidence_error_spearman']:.2f}; median |model - LiDAR| / LiDAR at fed pixels "
                   f"{100 * result['lidar_residual']:.2f} %")
        if "mono_abs_rel_ratio" in result:
            summary += f"; monocular AbsRel ratio i2d / row prior (affine): **{result['mono_abs_rel_ratio']:.3f}**"
        if "reference" in result:
            summary += f"; against the reference {report['reference']}: {_versus_reference(result)}"
        lines += [summary, ""]
        if "segments" in result:
            seg = result["segments"]
            lines += ["segment-holdout (whole scan-line pieces held out: between the lines): RMSE "
                      + ", ".join(f"{label} {m['rmse']:.3f}" for label, m in seg["methods"].items())
                      + f"; best classical **{seg['best_classical']}**, ratio **{seg['rmse_ratio']:.3f}** "
                      + _spread(seg) + (f"; against the reference: {_versus_reference(seg)}" if "reference" in seg
                                        else ""), ""]
    lo, hi = report["geomean_rmse_ratio_interval"]
    lo_between, hi_between = report["geomean_rmse_ratio_between_lines_interval"]
    lines.append(f"Geometric mean of the RMSE ratios over {len(report['sets'])} sets: "
                 f"**{report['geomean_rmse_ratio']:.3f}** (90 % interval {lo:.3f}-{hi:.3f}); between scan lines "
                 f"(segment-holdout where a set has only LiDAR): **{report['geomean_rmse_ratio_between_lines']:.3f}** "
                 f"({lo_between:.3f}-{hi_between:.3f})")
    for name, reason in report["skipped"].items():
        lines.append(f"- skipped {name}: {reason}")
    return "\n".join(lines) + "\n"


def _spread(result: dict) -> str:
    lo, hi = result["rmse_ratio_interval"]
    return (f"(90 % interval over frames {lo:.3f}-{hi:.3f}; better on {result['frames_better']} of "
            f"{len(result['frame_rmse']['model'])} frames)")


def _versus_reference(result: dict) -> str:
    reference = result["reference"]
    lo, hi = reference["rmse_ratio_interval"]
    return (f"RMSE ratio **{reference['rmse_ratio']:.3f}** (90 % interval {lo:.3f}-{hi:.3f}; better on "
            f"{reference['frames_better']} of {len(reference['frame_rmse'])} frames)")


def resampled_ratios(numerator: list[float], denominator: list[float], seed: int) -> np.ndarray:
    """(RESAMPLES,) the ratio of mean per-frame RMSEs (a set's RMSE is the mean over its frames), numerator /
    denominator, over frames drawn with replacement: the same draws for both, so frame difficulty cancels."""
    top, bottom = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    draws = np.random.default_rng(seed).integers(0, len(top), size=(RESAMPLES, len(top)))  # (R, n) frames
    return top[draws].mean(axis=1) / bottom[draws].mean(axis=1)


def interval(resamples: np.ndarray) -> list[float]:
    """The 90 % interval of bootstrap ``resamples``, rounded for the report."""
    return [round(float(v), 4) for v in np.percentile(resamples, INTERVAL_PERCENTILES)]


def _with_spread(result: dict, seed: int) -> np.ndarray:
    """Add the interval and the count of frames won to a :func:`compare` result; returns its resamples."""
    frames = result["frame_rmse"]
    resamples = resampled_ratios(frames["model"], frames["best_classical"], seed)
    result["rmse_ratio_interval"] = interval(resamples)
    result["frames_better"] = _frames_better(frames["model"], frames["best_classical"])
    if "reference" in result:
        reference = result["reference"]
        reference["rmse_ratio_interval"] = interval(resampled_ratios(frames["model"], reference["frame_rmse"], seed))
        reference["frames_better"] = _frames_better(frames["model"], reference["frame_rmse"])
    return resamples


def _frames_better(model: list[float], other: list[float]) -> int:
    return int(sum(m < o for m, o in zip(model, other, strict=True)))


def run(args: argparse.Namespace) -> dict:
    import json

    from mf_core.completion import CLASSICAL_BASELINES
    from mf_core.errors import InputError
    from mf_core.pipeline import DepthEstimator
    from mf_training.data.real_sets import REAL_SETS, data_root, read_real_split
    from mf_training.eval.harness import baseline_method, estimator_method, evaluate
    from mf_training.eval.protocols import make_protocol

    root = data_root(args.data_root)
    names = list(REAL_SETS) if not args.sets else [n.strip() for n in args.sets.split(",") if n.strip()]
    unknown = [n for n in names if n not in REAL_SETS]
    if unknown:
        raise InputError(f"unknown real set(s) {unknown}; use some of {', '.join(REAL_SETS)}")
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be at least 1, got {args.limit}")
    if args.line_every < 1:
        raise InputError(f"--line-every must be at least 1 (1 = every scan line), got {args.line_every}")
    if args.panels and not args.out_dir:
        raise InputError("--panels needs --out-dir (where the PNGs go)")
    mode = args.mode or _recommended_mode(args.model)
    estimator = DepthEstimator.from_checkpoint(args.model, args.device)
    model = estimator_method(estimator, str(args.model), mode)
    reference = None
    if args.reference:
        reference = estimator_method(DepthEstimator.from_checkpoint(args.reference, args.device), str(args.reference),
                                     mode)
    mono = None if args.no_mono else estimator_method(estimator, str(args.model), "i2d")
    out_dir = Path(args.out_dir) if args.out_dir else None

    report: dict = {"model": str(args.model), "mode": mode, "split": args.split, "data_root": str(root),
                    "line_every": args.line_every, "sets": {}, "skipped": {}}
    if reference is not None:
        report["reference"] = str(args.reference)
    resamples: dict[str, np.ndarray] = {}  # per set: bootstrap ratios under its protocol ...
    between_lines: dict[str, np.ndarray] = {}  # ... and between the scan lines
    for name in names:
        real_set = REAL_SETS[name]
        seed = list(REAL_SETS).index(name)  # a set's draws do not depend on which other sets run
        if not (root / real_set.folder).exists():
            report["skipped"][name] = f"not found at {root / real_set.folder}"
            continue
        samples = [_with_lines_every(sample, args.line_every) for sample in read_real_split(name, args.split, root)
                   [: args.limit]]
        if not samples:
            report["skipped"][name] = f"no {args.split} frames"
            continue
        protocol = make_protocol(real_set.protocol)
        predictions: list = []  # the model's DepthResult of every frame: confidence and LiDAR fit
        recorded = estimator_method(estimator, str(args.model), mode, on_result=predictions.append)
        baselines = [(PRIOR_LABEL, baseline_method("scanline"))]
        baselines += [(f"baseline:{b}", baseline_method(b)) for b in CLASSICAL_BASELINES]
        result: dict = {"frames": len(samples), "frame_names": [sample.name for sample in samples],
                        "protocol": real_set.protocol, "provenance": real_set.provenance}
        panels = None if out_dir is None or not args.panels else out_dir / "panels" / name
        extra = [] if reference is None else [(REFERENCE_LABEL, reference)]
        result |= compare(samples, [(f"mf {mode}", recorded), *baselines, *extra], protocol, panels,
                          f"quality {name}")
        resamples[name] = between_lines[name] = _with_spread(result, seed)
        if real_set.protocol == "lidar-holdout":  # also between the lines: see mf_training/eval/protocols.py
            result["segments"] = compare(samples, [(f"mf {mode}", model), *baselines, *extra],
                                         make_protocol("segment-holdout"), None, f"quality {name} (segment-holdout)")
            between_lines[name] = _with_spread(result["segments"], seed)
        result |= confidence_and_lidar_fit(predictions, samples, protocol)
        if mono is not None:
            affine = make_protocol("affine")
            targets = _lidar_as_ground_truth(samples)
            result["mono"] = {}
            for label, method in (("mf i2d (affine)", mono), ("row prior (affine)", baseline_method("row-prior"))):
                where = None if out_dir is None else out_dir / "panels" / name / label.split(" (")[0].replace(" ", "_")
                result["mono"][label] = _scores(evaluate(targets, method, affine, where, progress=False,
                                                         panels=args.panels))
            result["mono_abs_rel_ratio"] = round(result["mono"]["mf i2d (affine)"]["abs_rel"]
                                                 / result["mono"]["row prior (affine)"]["abs_rel"], 4)
        report["sets"][name] = result
    if not report["sets"]:
        raise InputError(f"no real set found under {root}: {report['skipped']}; set --data-root or $MF_DATA_ROOT")
    report["geomean_rmse_ratio"] = round(geometric_mean([r["rmse_ratio"] for r in report["sets"].values()]), 4)
    # Between scan lines: segment-holdout where a set has only LiDAR, the dense ground truth elsewhere.
    report["geomean_rmse_ratio_between_lines"] = round(geometric_mean(
        [r.get("segments", r)["rmse_ratio"] for r in report["sets"].values()]), 4)
    for key, per_set in (("geomean_rmse_ratio_interval", resamples),
                         ("geomean_rmse_ratio_between_lines_interval", between_lines)):
        report[key] = interval(geometric_mean(np.stack(list(per_set.values())), axis=0))  # (sets, R) -> (R,)
    table = markdown(report)
    print(table, file=sys.stderr)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "quality.json").write_text(json.dumps(report, indent=2) + "\n")
        (out_dir / "quality.md").write_text(table)
    return report


def compare(samples: list, methods: list, protocol, panels: Path | None, what: str) -> dict:
    """Score each (label, EvalMethod) of ``methods`` on ``samples`` under ``protocol`` (the first is the
    model): ``{"methods": {label: scores}, "best_classical", "rmse_ratio", "frame_rmse"}`` (the per-frame RMSE of
    the model and of the best classical method), and ``"reference"`` (ratio and per-frame RMSE) when one of
    ``methods`` is labelled REFERENCE_LABEL; panels under ``panels/<label>``."""
    from mf_core.completion import CLASSICAL_BASELINES
    from mf_training.eval.harness import evaluate

    scores, frame_rmse = {}, {}
    for label, method in methods:
        where = None if panels is None else panels / label.replace(":", "_").replace(" ", "_")
        report = evaluate(samples, method, protocol, where, progress=False, panels=panels is not None)
        scores[label] = _scores(report)
        frame_rmse[label] = [round(frame["rmse"], 5) for frame in report["frames"]]
        print(f"{what}: {label} RMSE {scores[label]['rmse']:.3f}", file=sys.stderr)
    classical = {b: scores[f"baseline:{b}"]["rmse"] for b in CLASSICAL_BASELINES}
    best = min(classical, key=classical.get)
    model = methods[0][0]
    result = {"methods": scores, "best_classical": best,
              "rmse_ratio": round(scores[model]["rmse"] / classical[best], 4),
              "frame_rmse": {"model": frame_rmse[model], "best_classical": frame_rmse[f"baseline:{best}"]}}
    if REFERENCE_LABEL in scores:
        result["reference"] = {"rmse_ratio": round(scores[model]["rmse"] / scores[REFERENCE_LABEL]["rmse"], 4),
                               "frame_rmse": frame_rmse[REFERENCE_LABEL]}
    return result


def confidence_and_lidar_fit(predictions: list, samples: list, protocol) -> dict:
    """Spearman correlation of confidence with |error| over all scored pixels of ``samples``, and the mean
    over frames of the median relative distance from the fed LiDAR (``DepthResult.lidar_residual``), from
    the model's ``predictions`` (one DepthResult per sample, made under ``protocol``)."""
    from scipy.stats import spearmanr

    confidences, errors, residuals = [], [], []
    for sample, result in zip(samples, predictions, strict=True):
        split = protocol.split(sample)  # deterministic: the split the prediction was fed
        scored = split.score_mask & (split.target > 0) & (result.depth > 0)
        confidences.append(result.confidence[scored])
        errors.append(np.abs(result.depth[scored] - split.target[scored]))
        residuals.append(result.lidar_residual)
    rho = spearmanr(np.concatenate(confidences), np.concatenate(errors)).statistic
    return {"confidence_error_spearman": round(float(rho), 4), "lidar_residual": round(float(np.mean(residuals)), 5)}


def _recommended_mode(checkpoint: str) -> str:
    """The mode a checkpoint recommends (:func:`mf_core.modes.recommended_mode`)."""
    from mf_core.checkpoint import read_checkpoint_config, resolve_model_path
    from mf_core.modes import recommended_mode

    config, metadata = read_checkpoint_config(resolve_model_path(checkpoint))
    return recommended_mode(metadata, config.depth_conditioned)
