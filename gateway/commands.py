"""Signed commands from the city (SPEC 7): check, claim the counter, act, journal the outcome.

Runs on a worker thread of its own, one command at a time in arrival order: a registry update
can hold the store for a second, and neither the door path nor the uplink's network loop may
wait for that. The counter is committed before anything is done, so a command replayed after a
crash, a broker redelivery or an attacker's recording is refused even if the first run died
half-way.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cloud_sync.envelope import Command, CommandRejected, open_command
from gateway.certificates import CertificateRefused, PageCertificate
from gateway.store import RegistryRejected, Store

log = logging.getLogger(__name__)

# Longest remote unlock: a delivery held at the door, not a door left open for the day.
MAX_UNLOCK_SECONDS = 600
# Commands the door part carries out (it checks their signatures itself); the uplink part
# hands their envelopes over as they came.
DOOR_COMMANDS = frozenset({"unlock", "lockdown"})
Reply = Callable[[dict[str, Any]], None]
Forward = Callable[[bytes], dict[str, Any]]


class Door(Protocol):
    """The part of a door a command may use."""

    def unlock(self, seconds: float, reason: str, extra: dict[str, Any]) -> int: ...


class Lockdown(Protocol):
    """Where the lockdown flag lives for the doors."""

    def set_lockdown(self, on: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class _Failed(Exception):
    """An accepted command that could not be carried out; `error` is a result word."""

    error: str
    detail: str


# Commands waiting for the worker. The city sends a few a day; more than this at once is a
# flood from someone the broker lets write P/cmd, and what comes on top is dropped unread
# (each would cost a signature check and a journal event).
MAX_QUEUED = 64


class CommandExecutor:
    """Take command envelopes from any thread; execute them in order on a worker thread."""

    def __init__(
        self,
        *,
        gateway_id: str,
        public_key: Ed25519PublicKey,
        store: Store,
        doors: dict[str, Door],
        lockdown: Lockdown | None,
        record: Callable[[dict[str, Any]], int],
        stamp: Callable[[], dict[str, Any]],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        forward: Forward | None = None,
        page_certificate: PageCertificate | None = None,
    ) -> None:
        """`record(event)` journals an event (and sends it up); `stamp()` gives ts fields.

        `page_certificate` installs `web.certificate` (the part that runs the uplink has
        it; without it, or without HTTPS, that command is refused as "unknown_command").

        With `forward`, door commands are not carried out here: their envelope, once its
        signature checks, goes to `forward` (the door part's socket), whose result is the
        command's; an OSError from it (the door part is down) rejects the command as
        "door_unavailable" without spending its counter, so the city may send it again.
        """
        self._forward = forward
        self._page_certificate = page_certificate
        self._gateway_id = gateway_id
        self._key = public_key
        self._store = store
        self._doors = doors
        self._lockdown = lockdown
        self._record = record
        self._stamp = stamp
        self._now = now
        self._queue: queue.SimpleQueue[tuple[bytes, Reply] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.rejected = 0  # commands refused, for any reason (for health reports)
        self._dropping = False  # the last submit() found the queue full

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._run, name="commands", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish the command being run and stop; queued ones are left (they expire)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def is_alive(self) -> bool:
        """Whether the worker runs: started, not stopped, and not ended by an exception."""
        return self._thread is not None and self._thread.is_alive()

    def submit(self, envelope: bytes, reply: Reply) -> None:
        """Queue an envelope; `reply(result)` is called from the worker when it is done.

        With MAX_QUEUED waiting already, the envelope is dropped unread and counted as
        rejected: no reply, no event (the city sends it again if it still matters).
        """
        if self._queue.qsize() >= MAX_QUEUED:  # one caller thread (MQTT's): no race that matters
            self.rejected += 1
            if not self._dropping:
                log.warning("%d commands wait already: dropping what comes on top", MAX_QUEUED)
            self._dropping = True
            return
        self._dropping = False
        self._queue.put((envelope, reply))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            envelope, reply = item
            result = self.execute(envelope)
            try:
                reply(result)
            except Exception:  # the result is lost, the command's event is not
                log.exception("sending a command result failed")

    # --------------------------------------------------------------------- execute

    def execute(self, envelope: bytes) -> dict[str, Any]:
        """Run one envelope to completion; return the result `{"counter", "ok", "error"}`."""
        try:
            command = open_command(envelope, self._key, gateway_id=self._gateway_id,
                                   now=self._now())  # fmt: skip
        except CommandRejected as rejected:
            return self._rejected(rejected.counter, None, rejected.reason, rejected.detail)
        if self._forward is not None and command.cmd in DOOR_COMMANDS:
            try:
                return self._forward(envelope)
            except (OSError, ValueError) as exc:
                return self._rejected(command.counter, command.cmd, "door_unavailable", str(exc))
        try:
            action = self._prepare(command)
        except _Failed as failed:
            return self._rejected(command.counter, command.cmd, failed.error, failed.detail)
        if not self._store.claim_command_counter(command.counter):
            return self._rejected(
                command.counter, command.cmd, "replayed",
                f"counter {command.counter} is not above the last accepted"
                f" ({self._store.command_counter()})",
            )  # fmt: skip
        try:
            details = action()
        except _Failed as failed:
            return self._rejected(command.counter, command.cmd, failed.error, failed.detail)
        self._record({
            "type": "command.executed", **self._stamp(), "counter": command.counter,
            "cmd": command.cmd, **details,
        })  # fmt: skip
        log.info("command %d (%s) executed", command.counter, command.cmd)
        return {"counter": command.counter, "ok": True, "error": None}

    def _rejected(self, counter: int | None, cmd: str | None, error: str, detail: str,
                  ) -> dict[str, Any]:  # fmt: skip
        self.rejected += 1
        log.warning("command %s rejected: %s (%s)", counter, error, detail)
        event: dict[str, Any] = {
            "type": "command.rejected", **self._stamp(), "counter": counter, "cmd": cmd,
            "reason": error, "detail": detail[:200],
        }  # fmt: skip
        self._record(event)
        return {"counter": counter, "ok": False, "error": error}

    def _prepare(self, command: Command) -> Callable[[], dict[str, Any]]:
        """Check the arguments (before the counter is spent); return the action."""
        args = command.args
        if command.cmd == "unlock":
            door_name, seconds = args.get("door"), args.get("seconds")
            door = self._doors.get(door_name) if isinstance(door_name, str) else None
            if door is None:
                raise _Failed("unknown_door", f"no door named {door_name!r}")
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) \
                    or not 0 < seconds <= MAX_UNLOCK_SECONDS:  # fmt: skip
                raise _Failed("bad_args", f"seconds must be a number in (0, {MAX_UNLOCK_SECONDS}]")
            duration = float(seconds)
            counter = command.counter

            def unlock() -> dict[str, Any]:
                door.unlock(duration, "remote_unlock",
                            {"credential": {"kind": "command", "counter": counter}})  # fmt: skip
                return {"door": door_name, "seconds": seconds}

            return unlock
        if command.cmd == "lockdown":
            on = args.get("on")
            if type(on) is not bool:
                raise _Failed("bad_args", '"on" must be true or false')

            target = self._lockdown
            if target is None:
                raise _Failed("unknown_command", "lockdown is carried out by the door part")

            def lockdown() -> dict[str, Any]:
                target.set_lockdown(on)
                return {"on": on}

            return lockdown
        if command.cmd == "web.certificate":
            return self._web_certificate(args)
        return self._registry_apply(args)

    def _web_certificate(self, args: dict[str, Any]) -> Callable[[], dict[str, Any]]:
        target = self._page_certificate
        if target is None:
            raise _Failed("unknown_command", "this gateway serves no HTTPS page")
        try:
            chain = target.check(args.get("chain"), self._now())
        except CertificateRefused as refused:
            raise _Failed(refused.error, str(refused)) from None
        except (OSError, ValueError) as exc:  # the page's key unreadable
            raise _Failed("unavailable", f"the page's key: {exc}") from None

        def install() -> dict[str, Any]:
            try:
                return {"fingerprint": target.install(chain)}
            except OSError as exc:
                raise _Failed("unavailable", f"writing the certificate: {exc}") from None

        return install

    def _registry_apply(self, args: dict[str, Any]) -> Callable[[], dict[str, Any]]:
        version, base = args.get("version"), args.get("base_version")
        tenants, removed = args.get("tenants", []), args.get("removed", [])
        if type(version) is not int or version < 1:
            raise _Failed("bad_args", "version must be a positive integer")
        if base is not None and type(base) is not int:
            raise _Failed("bad_args", "base_version must be an integer or null")
        if not isinstance(tenants, list) or not isinstance(removed, list):
            raise _Failed("bad_args", "tenants and removed must be lists")

        def apply() -> dict[str, Any]:
            try:
                applied = self._store.apply_registry(
                    version=version, base_version=base, tenants=tenants, removed=removed
                )
            except RegistryRejected as rejected:  # version_gap, invalid_registry, stale_version…
                raise _Failed(rejected.error, str(rejected)) from None
            return {"version": version, "base_version": base, **applied.summary()}

        return apply
