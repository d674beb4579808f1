"""A node's life in a process: start, spin until SIGINT / SIGTERM, stop cleanly, exit 0.

rclpy's own signal handlers raise KeyboardInterrupt wherever the main thread happens to be
(inside ``destroy_node``, a warm-up, a publish) and shut the context down while the worker
thread still publishes: tracebacks, "publisher's context is invalid", lost log messages.
Here a signal only sets a flag; the spin loop notices it within ``POLL_S``, the node is
closed (inputs stopped, the frame in flight finished, the recorder's bag closed) while the
context is still valid, then ROS shuts down. A signal during start-up (model loading and
warm-up) is honoured as soon as start-up returns. Further signals while stopping are ignored
so a double Ctrl-C cannot cut the bag short; ``ros2 launch`` escalates to SIGKILL after its
``sigterm_timeout`` if stopping ever hangs.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from mf_core.errors import InputError

POLL_S = 0.1  # how often the spin loop looks at the stop flag


class StopRequest:
    """Turns SIGINT and SIGTERM into a flag (and remembers which signal came first)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name: str | None = None

    def install(self) -> None:
        """Handle SIGINT and SIGTERM in this process from now on (main thread only)."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signal_name is None:
            self.signal_name = signal.Signals(signum).name
        self.event.set()

    @property
    def requested(self) -> bool:
        """True once a stop signal arrived."""
        return self.event.is_set()


def run_until_signal(make_node: Callable[[], Any], args: list[str] | None = None) -> int:
    """Create the node with ``make_node`` and run it until a stop signal; the process exit code.

    The node provides ``start() -> bool`` (False: bad configuration, exit 2), ``close()`` and
    optionally ``failed`` (a reason string: exit 1, e.g. the recorder could not write).
    An InputError from ``make_node`` is a bad configuration too (printed, exit 2).
    """
    stop = StopRequest()
    stop.install()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = make_node()
    except InputError as err:
        print(f"cannot start: {err}", flush=True)
        rclpy.try_shutdown()
        return 2
    executor = SingleThreadedExecutor()
    code = 0
    try:
        if not node.start():
            code = 2
        else:
            executor.add_node(node)
            while not stop.requested and rclpy.ok() and getattr(node, "failed", None) is None:
                executor.spin_once(timeout_sec=POLL_S)
        if stop.requested:
            node.get_logger().info(f"{stop.signal_name}: stopping")
    finally:
        node.close()
        if getattr(node, "failed", None):
            code = 1
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return code
