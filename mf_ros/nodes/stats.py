"""Per-stage timings and drop counters of a node, published as diagnostics.

``diagnostic_msgs/DiagnosticArray`` on ``/diagnostics`` when that package imports (a ROS
install); otherwise a ``std_msgs/String`` holding the same numbers as JSON (the PyPI
wheels carry no diagnostic_msgs, see docs ROS.md). Thread-safe: callbacks and the
worker thread record into one object.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, deque
from collections.abc import Mapping
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


class StatsPublisher:
    """Publishes a :class:`NodeStats` snapshot: DiagnosticArray on /diagnostics, else JSON on ``json_topic``."""

    def __init__(self, node: Any, stats: NodeStats, json_topic: str) -> None:
        self._node = node
        self._stats = stats
        self._diag = _diagnostic_msgs()
        if self._diag is not None:
            self._publisher = node.create_publisher(self._diag.DiagnosticArray, "/diagnostics", 10)
            self.topic = "/diagnostics"
        else:
            from std_msgs.msg import String

            self._publisher = node.create_publisher(String, json_topic, 10)
            self.topic = self._publisher.topic_name

    def publish(self) -> None:
        """Publish the current snapshot once."""
        snapshot = self._stats.snapshot()
        if self._diag is None:
            from std_msgs.msg import String

            self._publisher.publish(String(data=json.dumps(snapshot, sort_keys=True)))
            return
        values = [(f"count.{k}", v) for k, v in snapshot["counts"].items()]
        values += [(f"drop.{k}", v) for k, v in snapshot["drops"].items()]
        values += [(f"{stage}.{k}", v) for stage, t in snapshot["timings"].items() for k, v in t.items()]
        status = self._diag.DiagnosticStatus(
            level=self._diag.DiagnosticStatus.OK, name=self._node.get_fully_qualified_name(),
            message=f"{snapshot['counts'].get('published', 0)} published, {snapshot['dropped_total']} dropped",
            hardware_id="", values=[self._diag.KeyValue(key=k, value=str(v)) for k, v in values])
        array = self._diag.DiagnosticArray(status=[status])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self._publisher.publish(array)

    def destroy(self) -> None:
        """Remove the publisher from the node."""
        self._node.destroy_publisher(self._publisher)
