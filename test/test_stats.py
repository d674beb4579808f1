"""Health levels of the nodes' stats (the /diagnostics level and the JSON's "level")."""

from __future__ import annotations

import pytest

pytest.importorskip("rclpy")

from mf_ros.nodes.stats import NodeStats, health


def _period(stats: NodeStats, received: int, published: int, drops: dict[str, int], latency_ms: float | None = None):
    stats.count("received_image", received)
    stats.count("published", published)
    for reason, n in drops.items():
        stats.drop(reason, n)
    if latency_ms is not None:
        stats.time({"latency": latency_ms})
    return stats.snapshot()


def test_levels_follow_drop_causes_and_latency():
    stats = NodeStats()
    first = _period(stats, 10, 10, {})
    assert health(None, first)[0] == 0
    expected = _period(stats, 10, 4, {"replaced": 6})  # the latest-frame policy at work: fine
    assert health(first, expected)[0] == 0
    faulty = _period(stats, 10, 8, {"missing_tf": 2})
    level, message = health(expected, faulty)
    assert level == 1 and "2 missing_tf" in message
    dead = _period(stats, 10, 0, {"missing_tf": 10})
    level, message = health(faulty, dead)
    assert level == 2 and "every frame dropped" in message
    quiet = stats.snapshot()  # nothing happened in this period: the old faults are not repeated
    assert health(dead, quiet)[0] == 0


def test_slow_output_is_a_warning():
    stats = NodeStats()
    level, message = health(None, _period(stats, 5, 5, {}, latency_ms=2500.0))
    assert level == 1 and "latency" in message


def test_an_input_no_publisher_reaches_is_a_warning():
    stats = NodeStats()
    connected = _period(stats, 5, 5, {}) | {"publishers": {"/image": 1, "/camera_info": 1, "/points": 2}}
    assert health(None, connected)[0] == 0
    level, message = health(connected, stats.snapshot() | {"publishers": {"/image": 1, "/points": 0}})
    assert level == 1 and "/points" in message and "/image" not in message
