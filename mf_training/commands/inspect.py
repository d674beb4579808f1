"""``mf inspect BAG``: topics, types, counts, rates, time span, and how many image/LiDAR pairs sync."""

from __future__ import annotations

import argparse
import json

import numpy as np

from mf_core.errors import InputError
from mf_ros.bags import bag_topics, read_messages
from mf_ros.deskew import point_time_field
from mf_training.commands.export import add_bag_arguments, bag_options
from mf_training.data.bag_samples import BagSamples

NS_PER_S = 1e9


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="rosbag2 directory, .mcap or .db3 file")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    add_bag_arguments(parser)


def _log_times(bag: str) -> dict[str, np.ndarray]:
    """(N,) int64 log times of every topic's messages."""
    times: dict[str, list[int]] = {t.topic: [] for t in bag_topics(bag)}
    for message in read_messages(bag, decode=False):  # log times only: nothing to decode
        times[message.topic].append(message.stamp_ns)
    return {topic: np.asarray(t, dtype=np.int64) for topic, t in times.items()}


def _rate_hz(times: np.ndarray) -> float | None:
    span = int(times.max() - times.min()) if times.size else 0
    return (times.size - 1) * NS_PER_S / span if times.size >= 2 and span > 0 else None


def summarize(args: argparse.Namespace) -> dict:
    """The report: topics with type/count/rate, the time span and the sync result (or why it failed)."""
    times = _log_times(args.bag)
    everything = np.concatenate([t for t in times.values()] + [np.zeros(0, np.int64)])
    report: dict = {
        "bag": str(args.bag),
        "start_ns": int(everything.min()) if everything.size else None,
        "end_ns": int(everything.max()) if everything.size else None,
        "duration_s": float(np.ptp(everything)) / NS_PER_S if everything.size else 0.0,
        "topics": [{"topic": t.topic, "type": t.msgtype, "count": int(times[t.topic].size),
                    "rate_hz": _rate_hz(times[t.topic])} for t in bag_topics(args.bag)],
    }
    try:
        source = BagSamples(args.bag, **bag_options(args))
    except InputError as exc:
        report["sync"] = {"slop_s": args.slop, "error": str(exc)}
        return report
    stats = source.sync.stats
    report["sync"] = {
        "slop_s": args.slop,
        "image_topic": source.topics.image,
        "camera_info_topic": source.topics.camera_info,
        "points_topic": source.topics.points,
        "gt_topic": source.topics.gt,
        "images": stats.images,
        "pairs": stats.pairs,
        "skipped": stats.skipped,
        # None with --fixed-frame: the sweep moves with the robot, each pair has its own transform
        "extrinsic_T_camera_from_lidar": None if source.T_cam_from_lidar is None else
        source.T_cam_from_lidar.round(6).tolist(),
        "point_time_field": _point_time_field(args, source.topics.points),
    }
    return report


def _point_time_field(args: argparse.Namespace, points_topic: str) -> str | None:
    """The per-point time field of the bag's first sweep that ``--point-time`` picks (None: none); a field
    ``--point-time`` names that the cloud lacks raises InputError."""
    first = next(iter(read_messages(args.bag, [points_topic])), None)
    return None if first is None else point_time_field(first.msg, args.point_time)


def format_table(report: dict) -> str:
    """Human-readable form of :func:`summarize`'s report."""
    width = max([len("topic")] + [len(t["topic"]) for t in report["topics"]])
    type_width = max([len("type")] + [len(t["type"]) for t in report["topics"]])
    lines = [f"bag: {report['bag']}",
             f"span: {report['duration_s']:.3f} s ({report['start_ns']} .. {report['end_ns']} ns)",
             "",
             f"{'topic':<{width}}  {'type':<{type_width}}  {'count':>7}  {'rate Hz':>8}"]
    for t in report["topics"]:
        rate = f"{t['rate_hz']:.2f}" if t["rate_hz"] is not None else "-"
        lines.append(f"{t['topic']:<{width}}  {t['type']:<{type_width}}  {t['count']:>7}  {rate:>8}")
    sync = report["sync"]
    lines.append("")
    if "error" in sync:
        lines.append(f"sync (slop {sync['slop_s']} s): not possible: {sync['error']}")
        return "\n".join(lines)
    lines.append(f"sync (slop {sync['slop_s']} s): {sync['image_topic']} + {sync['points_topic']} "
                 f"(camera_info {sync['camera_info_topic']}, ground truth {sync['gt_topic'] or 'none'})")
    lines.append(f"  {sync['pairs']}/{sync['images']} images paired")
    lines.extend(f"  skipped {n}: {reason}" for reason, n in sync["skipped"].items() if n)
    field = sync["point_time_field"]
    lines.append(f"  per-point LiDAR time: {field!r} (each return moved from its own time with --fixed-frame)"
                 if field else "  per-point LiDAR time: none (each sweep moves as one with --fixed-frame)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    report = summarize(args)
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0
