"""`gateway demo --broker`: the demo building publishes to a real broker and obeys the city."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

from .broker import Broker


def test_demo_sends_events_to_the_broker_and_takes_a_signed_unlock(broker: Broker) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "demo", "--port", "0", "--broker",
         f"{broker.host}:{broker.port}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdin is not None
    assert proc.stdout is not None
    output: list[str] = []

    def read_until(pattern: str, timeout: float = 40.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            output.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no {pattern!r} in:\n{''.join(output)}")

    def send(line: str) -> None:
        proc.stdin.write(line + "\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]

    try:
        read_until("City broker")
        read_until("'q' \\(")
        send("1")
        read_until("GRANTED")
        # The grant reached the city's store and came back acknowledged.
        read_until(r"acknowledged up to seq [1-9]")
        send("unlock")
        assert "executed" in read_until("city command unlock")
        # The door's own access.granted event (shown once its snapshot is in).
        if not any("remote unlock" in line for line in output):
            read_until("远程开门 remote unlock")
        send("lockdown on")
        assert "executed" in read_until("city command lockdown")
        send("1")
        assert "lockdown" in read_until("DENIED")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, "".join(output)
    finally:
        if proc.poll() is None:
            proc.kill()
