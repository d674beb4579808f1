"""Per-stage timings and drop counters of a node, published as diagnostics.

Always a ``std_msgs/String`` holding the numbers as JSON (so scripts and tests read the
same thing everywhere), and ``diagnostic_msgs/DiagnosticArray`` on ``/diagnostics`` with an
OK / WARN / ERROR level when that package imports (a ROS install; the PyPI wheels carry no
diagnostic_msgs, see docs ROS.md). Thread-safe: callbacks and the
worker thread record into one object.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

# Timings kept per stage for the rolling mean / max.
WINDOW = 100


class NodeStats:
    """Counters (received, published, dropped by reason) and rolling per-stage timings in ms."""

    def __init__(self, window: int = WINDOW) -> None:
        self._lock = threading.Lock()
        self._window = window
        self.counts: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()
        self._timings: dict[str, deque[float]] = {}
        self._totals_seen: dict[str, int] = {}

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name`` (e.g. "received_image", "published")."""
        with self._lock:
            self.counts[name] += n

    def drop(self, reason: str, n: int = 1) -> None:
        """Count ``n`` frames dropped for ``reason`` (e.g. "replaced", "no_lidar_in_slop")."""
        with self._lock:
            self.drops[reason] += n

    def drops_from_totals(self, totals: Mapping[str, int]) -> list[str]:
        """Count the growth of running drop totals kept elsewhere (e.g. StampSync.drops); returns the
        reasons that grew since the last call."""
        grown = []
        with self._lock:
            for reason, total in totals.items():
                new = total - self._totals_seen.get(reason, 0)
                if new:
                    self.drops[reason] += new
                    self._totals_seen[reason] = total
                    grown.append(reason)
        return grown

    def time(self, timings_ms: dict[str, float]) -> None:
        """Record one frame's per-stage timings in milliseconds."""
        with self._lock:
            for stage, ms in timings_ms.items():
                self._timings.setdefault(stage, deque(maxlen=self._window)).append(float(ms))

    def snapshot(self) -> dict[str, Any]:
        """Counters, drops and ``{stage: {"mean_ms", "max_ms", "last_ms"}}`` as plain JSON-able data."""
        with self._lock:
            timings = {stage: {"mean_ms": round(float(np.mean(v)), 3), "max_ms": round(max(v), 3),
                               "last_ms": round(v[-1], 3)} for stage, v in self._timings.items() if v}
            return {"counts": dict(self.counts), "drops": dict(self.drops),
                    "dropped_total": sum(self.drops.values()), "timings": timings}


def _diagnostic_msgs() -> Any:
    """The diagnostic_msgs.msg module, or None where it is not installed (PyPI wheels)."""
    try:
        from diagnostic_msgs import msg
    except ImportError:
        return None
    return msg


# Drops that are the design working, not a fault: the latest-frame worker replacing a frame it had
# no time for, a lazy node with nobody watching, and the recorder skipping near-duplicates.
EXPECTED_DROPS = ("replaced", "no_subscribers", "min_interval")
SLOW_LATENCY_MS = 1000.0  # mean image-to-output latency above this is a WARN


def health(previous: dict[str, Any] | None, current: dict[str, Any]) -> tuple[int, str]:
    """(level 0 OK / 1 WARN / 2 ERROR, message) from two snapshots one period apart.

    ERROR: inputs arrived but nothing came out in the period. WARN: an input no publisher reaches (the
    snapshot's "publishers", where given), frames dropped for a reason other than ``EXPECTED_DROPS``, or
    latency above ``SLOW_LATENCY_MS``.
    """
    before = previous or {"counts": {}, "drops": {}}

    def grown(group: str, key: str) -> int:
        return current[group].get(key, 0) - before[group].get(key, 0)

    received = sum(grown("counts", k) for k in current["counts"] if k.startswith("received_"))
    output = grown("counts", "published") + grown("counts", "recorded")
    faults = {k: grown("drops", k) for k in current["drops"] if k not in EXPECTED_DROPS and grown("drops", k)}
    latency = current["timings"].get("latency", {}).get("mean_ms", 0.0)
    if received and not output and faults:
        return 2, "no output: every frame dropped (" + ", ".join(f"{n} {k}" for k, n in faults.items()) + ")"
    unconnected = [topic for topic, n in current.get("publishers", {}).items() if not n]
    if unconnected:
        return 1, f"no publisher reaches {', '.join(unconnected)} (none on the topic, or none with a QoS it can take)"
    if faults:
        return 1, "frames dropped: " + ", ".join(f"{n} {k}" for k, n in faults.items())
    if latency > SLOW_LATENCY_MS:
        return 1, f"slow: mean latency {latency:.0f} ms"
    return 0, f"{current['counts'].get('published', current['counts'].get('recorded', 0))} out, " \
              f"{current['dropped_total']} dropped in all"


class StatsPublisher:
    """Publishes a :class:`NodeStats` snapshot as JSON (``std_msgs/String`` on ``json_topic``, always) and,
    where diagnostic_msgs is installed, as a DiagnosticArray on /diagnostics with a health level.

    ``publishers`` (optional) gives the publishers matched to each input topic, reported under "publishers": a 0
    there tells a user the input is not connected (no publisher, or one with a QoS the node cannot take)."""

    def __init__(self, node: Any, stats: NodeStats, json_topic: str,
                 publishers: Callable[[], dict[str, int]] | None = None) -> None:
        from std_msgs.msg import String

        self._node = node
        self._stats = stats
        self._publishers = publishers
        self._string = String
        self._json = node.create_publisher(String, json_topic, 10)
        self.topic = self._json.topic_name
        self._diag = _diagnostic_msgs()
        self._diagnostics = None if self._diag is None else \
            node.create_publisher(self._diag.DiagnosticArray, "/diagnostics", 10)
        self._previous: dict[str, Any] | None = None

    def publish(self) -> None:
        """Publish the current snapshot once."""
        snapshot = self._stats.snapshot()
        if self._publishers is not None:
            snapshot["publishers"] = self._publishers()
        level, message = health(self._previous, snapshot)
        self._previous = snapshot
        self._json.publish(self._string(data=json.dumps({**snapshot, "level": level, "message": message},
                                                        sort_keys=True)))
        if self._diagnostics is None:
            return
        values = [(f"count.{k}", v) for k, v in snapshot["counts"].items()]
        values += [(f"drop.{k}", v) for k, v in snapshot["drops"].items()]
        values += [(f"{stage}.{k}", v) for stage, t in snapshot["timings"].items() for k, v in t.items()]
        values += [(f"publishers.{topic}", n) for topic, n in snapshot.get("publishers", {}).items()]
        status = self._diag.DiagnosticStatus(
            level=bytes([level]), name=self._node.get_fully_qualified_name(), message=message,
            hardware_id="", values=[self._diag.KeyValue(key=k, value=str(v)) for k, v in values])
        array = self._diag.DiagnosticArray(status=[status])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self._diagnostics.publish(array)

    def destroy(self) -> None:
        """Remove the publishers from the node."""
        self._node.destroy_publisher(self._json)
        if self._diagnostics is not None:
            self._node.destroy_publisher(self._diagnostics)
