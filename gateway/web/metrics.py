"""`/metrics`: the health report as Prometheus text (exposition format 0.0.4).

Only counts, states and door names; never a card, a name, a room or an ID number.
"""

from __future__ import annotations

from typing import Any


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _bool(value: object) -> int:
    return 1 if value is True else 0


def metrics_text(health: dict[str, Any], sessions: int) -> str:
    """Render the gateway's health report as Prometheus metrics."""
    lines: list[str] = []

    def metric(name: str, help_text: str, kind: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

    metric("gateway_up", "1 when the gateway reports itself healthy.", "gauge",
           [("", 1 if health.get("status") == "ok" else 0)])  # fmt: skip
    metric("gateway_uptime_seconds", "Seconds since the gateway started.", "gauge",
           [("", float(health.get("uptime_seconds", 0)))])  # fmt: skip
    metric("gateway_clock_synced", "1 when the system clock is synchronised.", "gauge",
           [("", _bool(health.get("clock_synced")))])  # fmt: skip
    if health.get("disk_free_mb") is not None:
        metric("gateway_disk_free_bytes", "Free space on the data disk.", "gauge",
               [("", float(health["disk_free_mb"]) * 1024 * 1024)])  # fmt: skip
    doors = health.get("doors", {})
    metric("gateway_reader_online", "1 while the door's reader answers.", "gauge",
           [(f'{{door="{_label(d)}"}}', _bool(s.get("reader_online"))) for d, s in doors.items()])
    metric("gateway_reader_secure_channel", "1 while the reader talks over the secure channel.",
           "gauge", [(f'{{door="{_label(d)}"}}', _bool(s.get("secure_channel")))
                     for d, s in doors.items()])  # fmt: skip
    metric("gateway_reader_line_errors_total", "Garbled or missing answers on the bus.",
           "counter", [(f'{{door="{_label(d)}"}}', float(s.get("line_errors", 0)))
                       for d, s in doors.items()])  # fmt: skip
    uplink = health.get("uplink")
    if uplink is not None:
        metric("gateway_uplink_connected", "1 while connected to the city's broker.", "gauge",
               [("", _bool(uplink.get("connected")))])  # fmt: skip
        metric("gateway_uplink_published_total", "Events published (resends included).",
               "counter", [("", float(uplink.get("published", 0)))])  # fmt: skip
        metric("gateway_uplink_snapshots_total", "Snapshots the broker took.", "counter",
               [("", float(uplink.get("snapshots", 0)))])  # fmt: skip
        metric("gateway_uplink_downlink_refused_total",
               "Downlink messages refused: malformed, too large, retained, an ack ahead of sends.",
               "counter", [("", float(uplink.get("downlink_refused", 0)))])  # fmt: skip
        metric("gateway_uplink_commands_rejected_total", "Commands refused, for any reason.",
               "counter", [("", float(uplink.get("commands_rejected", 0)))])  # fmt: skip
    camera = health.get("camera")
    if camera is not None:
        metric("gateway_camera_online", "1 while the camera delivers frames.", "gauge",
               [("", _bool(camera.get("online")))])  # fmt: skip
        metric("gateway_snapshot_captures_total", "Captures by outcome.", "counter",
               [(f'{{outcome="{_label(k)}"}}', float(v))
                for k, v in sorted(camera.get("captures", {}).items())])  # fmt: skip
    metric("gateway_web_sessions", "Live login sessions.", "gauge", [("", float(sessions))])
    return "\n".join(lines) + "\n"
