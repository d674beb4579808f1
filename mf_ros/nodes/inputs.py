"""Input subscriptions with a QoS that does not lose most frames (``qos_reliability``).

Measured here (one machine, Fast DDS, 30 frames at 10 Hz of 640x480 rgb8 + a 120 k-point cloud
from a reliable publisher): a best-effort subscriber received 16-19 of 30 images and 15-17 of 30
clouds whether it kept 1 or 5 messages (large messages go out in fragments, and best effort
drops a sample when any fragment is late), a reliable one 30 and 28-29. So ``auto`` (the
default) subscribes reliable, unless a publisher of the topic offers only best effort (many
LiDAR drivers publish sensor-data QoS), which a reliable subscriber could not receive at all:
then best effort. Publishers that appear later are checked every ``CHECK_PERIOD_S``, and a
subscription that could not match is made again best effort (logged).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

CHECK_PERIOD_S = 2.0
RELIABILITY = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}


def _profile(reliability: ReliabilityPolicy, depth: int) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability,
                      durability=DurabilityPolicy.VOLATILE)


class InputSubscriptions:
    """The node's input subscriptions under one ``qos_reliability`` policy (auto | reliable | best_effort)."""

    def __init__(self, node: Any, policy: str, depth: int) -> None:
        self._node = node
        self._policy = policy
        self._depth = depth
        self._inputs: list[dict[str, Any]] = []
        self._timer = node.create_timer(CHECK_PERIOD_S, self.check) if policy == "auto" else None

    def _best_effort_publisher(self, topic: str) -> bool:
        return any(info.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
                   for info in self._node.get_publishers_info_by_topic(topic))

    def _reliability(self, topic: str) -> ReliabilityPolicy:
        if self._policy != "auto":
            return RELIABILITY[self._policy]
        return ReliabilityPolicy.BEST_EFFORT if self._best_effort_publisher(topic) else ReliabilityPolicy.RELIABLE

    def add(self, msg_type: type, topic: str, callback: Callable[[Any], None], raw: bool = False) -> None:
        """Subscribe ``callback`` to ``topic`` (name as given: remappings and the namespace apply)."""
        name = self._node.resolve_topic_name(topic)
        entry = {"type": msg_type, "topic": name, "callback": callback, "raw": raw}
        self._subscribe(entry, self._reliability(name))
        self._inputs.append(entry)

    def _subscribe(self, entry: dict[str, Any], reliability: ReliabilityPolicy) -> None:
        entry["reliability"] = reliability
        entry["subscription"] = self._node.create_subscription(
            entry["type"], entry["topic"], entry["callback"], _profile(reliability, self._depth), raw=entry["raw"])

    def check(self) -> None:
        """Make a reliable subscription best effort again once a best-effort-only publisher shows up."""
        for entry in self._inputs:
            if entry["reliability"] == ReliabilityPolicy.RELIABLE and self._best_effort_publisher(entry["topic"]):
                self._node.destroy_subscription(entry["subscription"])
                self._subscribe(entry, ReliabilityPolicy.BEST_EFFORT)
                self._node.get_logger().info(f"{entry['topic']}: a publisher offers best effort only; "
                                             "subscribed best effort (qos_reliability auto)")

    def describe(self) -> list[str]:
        """``topic (reliability)`` of each input, for the start-up log."""
        return [f"{e['topic']} ({'reliable' if e['reliability'] == ReliabilityPolicy.RELIABLE else 'best effort'})"
                for e in self._inputs]

    def publisher_counts(self) -> dict[str, int]:
        """Publishers matched to each input subscription; 0 where nothing publishes on the topic yet or every
        publisher there offers a QoS the subscription cannot take."""
        return {e["topic"]: e["subscription"].get_publisher_count() for e in self._inputs}

    @property
    def topics(self) -> list[str]:
        """The resolved input topic names."""
        return [e["topic"] for e in self._inputs]

    def destroy(self) -> None:
        """Unsubscribe everything and stop the check timer."""
        if self._timer is not None:
            self._node.destroy_timer(self._timer)
            self._timer = None
        for entry in self._inputs:
            self._node.destroy_subscription(entry["subscription"])
        self._inputs = []
