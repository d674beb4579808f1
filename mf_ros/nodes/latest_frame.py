"""Latest-frame worker: slow processing on its own thread, never behind a queue of stale frames.

``submit`` hands a frame over and returns at once; a frame still waiting when a newer one
arrives is replaced and counted as dropped, so output latency stays at most one
processing time plus the wait for the frame in progress, however fast inputs come.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class LatestFrameWorker:
    """Runs ``process(frame)`` on a daemon thread for the newest submitted frame.

    ``on_replaced(frame)`` is called (on the submitting thread) for each frame that was
    replaced before processing started. ``process`` must catch its own errors: one that
    escapes ends the worker thread.
    """

    def __init__(self, process: Callable[[Any], None], on_replaced: Callable[[Any], None],
                 name: str = "latest_frame_worker") -> None:
        self._process = process
        self._on_replaced = on_replaced
        self._condition = threading.Condition()
        self._waiting: Any = None
        self._has_waiting = False
        self._busy = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, frame: Any) -> None:
        """Make ``frame`` the next one to process, replacing any frame still waiting."""
        with self._condition:
            if self._stopping:
                return
            replaced, had = self._waiting, self._has_waiting
            self._waiting, self._has_waiting = frame, True
            self._condition.notify()
        if had:
            self._on_replaced(replaced)

    def idle(self) -> bool:
        """True when nothing is waiting and nothing is being processed."""
        with self._condition:
            return not self._has_waiting and not self._busy

    def stop(self, timeout_s: float = 10.0) -> None:
        """Drop the waiting frame, let the one in progress finish, join the thread."""
        with self._condition:
            self._stopping = True
            self._waiting, self._has_waiting = None, False
            self._condition.notify()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._has_waiting and not self._stopping:
                    self._condition.wait()
                if self._stopping:
                    return
                frame, self._waiting, self._has_waiting = self._waiting, None, False
                self._busy = True
            try:
                self._process(frame)
            finally:
                with self._condition:
                    self._busy = False
