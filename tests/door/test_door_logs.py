"""A part's log lines are written by a thread of their own: a stalled log never holds a door."""

from __future__ import annotations

import logging
import threading

from gateway.parts.run import logs_written_by_a_thread


class _StalledLog(logging.Handler):
    """A log that takes nothing until released, as journald does when it is stuck."""

    def __init__(self) -> None:
        super().__init__()
        self.unstuck = threading.Event()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.unstuck.wait()
        self.lines.append(record.getMessage())


def _log_accesses(count: int) -> None:
    for n in range(count):
        logging.getLogger("door").info("access %d", n)


def test_a_stalled_log_neither_blocks_the_caller_nor_loses_count_of_lines() -> None:
    root = logging.getLogger()
    stalled = _StalledLog()
    root.addHandler(stalled)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        with logs_written_by_a_thread(backlog=5) as handler:
            door = threading.Thread(target=_log_accesses, args=(20,))
            door.start()
            door.join(10)
            assert not door.is_alive(), "logging waited for the stalled log"
            stalled.unstuck.set()
        dropped = handler.dropped
    finally:
        root.removeHandler(stalled)
        root.setLevel(level)
    access = [line for line in stalled.lines if line.startswith("access")]
    assert dropped > 0
    assert len(access) + dropped == 20
    assert access == [f"access {n}" for n in range(len(access))]  # in order, none twice
    assert f"{dropped} log lines dropped: the log writer fell behind" in stalled.lines
    assert root.handlers.count(stalled) == 0
