"""The optional sections: [mqtt] (TLS, topic prefix, command key), [camera] and [web]."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from gateway.config import load_config
from tests.config.support import MINIMAL, PUBLIC_KEY, problems, write

WANTED_KEY = (
    "paste the central platform's command public key: base64 of its raw 32-byte Ed25519"
    ' public key, 44 characters ending in "="'
)


def mqtt(*lines: str, key: str = PUBLIC_KEY) -> str:
    """Return MINIMAL with an [mqtt] section holding `lines`."""
    return (
        MINIMAL
        + "\n[mqtt]\n"
        + f'host = "broker"\ncommand_public_key = "{key}"\n'
        + ("\n".join(lines) + "\n")
    )


def pem_files(folder: Path, *names: str) -> None:
    """Create readable stand-ins for PEM files; only their presence is checked at load."""
    for name in names:
        (folder / name).write_text("-----BEGIN CERTIFICATE-----\n")


def test_mqtt_defaults(tmp_path: Path) -> None:
    settings = load_config(write(tmp_path, mqtt())).mqtt

    assert settings is not None
    assert (settings.port, settings.tls, settings.topic_prefix) == (1883, False, "rental/v1")
    assert (settings.keepalive_seconds, settings.session_expiry_seconds) == (30, 7 * 24 * 3600)
    assert settings.command_key_bytes == base64.b64decode(PUBLIC_KEY)


def test_tls_without_files(tmp_path: Path) -> None:
    path = write(tmp_path, mqtt("tls = true"))

    assert problems(path) == ["mqtt.tls: tls = true also needs ca_file, cert_file and key_file"]


def test_tls_with_one_file_missing_names_it(tmp_path: Path) -> None:
    pem_files(tmp_path, "ca.pem", "gw.pem")
    path = write(tmp_path, mqtt("tls = true", 'ca_file = "ca.pem"', 'cert_file = "gw.pem"'))

    assert problems(path) == ["mqtt.tls: tls = true also needs key_file"]


def test_tls_with_files(tmp_path: Path) -> None:
    pem_files(tmp_path, "ca.pem", "gw.pem", "gw.key")
    path = write(
        tmp_path,
        mqtt("tls = true", 'ca_file = "ca.pem"', 'cert_file = "gw.pem"', 'key_file = "gw.key"'),
    )

    settings = load_config(path).mqtt

    assert settings is not None
    assert settings.tls
    assert settings.ca_file == tmp_path / "ca.pem"


def test_tls_file_that_cannot_be_read(tmp_path: Path) -> None:
    pem_files(tmp_path, "ca.pem", "gw.pem")
    path = write(
        tmp_path,
        mqtt("tls = true", 'ca_file = "ca.pem"', 'cert_file = "gw.pem"', 'key_file = "gw.key"'),
    )

    assert problems(path) == [f"mqtt.key_file: file not found: {tmp_path}/gw.key"]


def test_tls_files_without_tls_are_refused(tmp_path: Path) -> None:
    pem_files(tmp_path, "ca.pem")
    path = write(tmp_path, mqtt('ca_file = "ca.pem"'))

    assert problems(path) == [
        "mqtt.tls: ca_file set but tls = false, so they would not be used;"
        " set tls = true or remove them"
    ]


@pytest.mark.parametrize(
    "placeholder",
    [
        "…",
        "...",
        "changeme",
        "CHANGE_ME",
        "xxx",
        "<base64 public key>",
        "your-key-here",
        "A" * 43 + "=",  # 32 zero bytes
        "x" * 43 + "=",
    ],
)
def test_placeholder_command_key(tmp_path: Path, placeholder: str) -> None:
    path = write(tmp_path, mqtt(key=placeholder))

    assert problems(path) == [f"mqtt.command_public_key: is a placeholder; {WANTED_KEY}"]


def test_command_key_that_is_not_base64(tmp_path: Path) -> None:
    path = write(tmp_path, mqtt(key="Icc8ml9oVUfowzsaciPTbkT1glG6UF3ERfq6rYqEUFY"))

    assert problems(path) == [f"mqtt.command_public_key: is not valid base64; {WANTED_KEY}"]


def test_command_key_of_the_wrong_length(tmp_path: Path) -> None:
    path = write(tmp_path, mqtt(key=base64.b64encode(bytes(range(1, 65))).decode()))

    assert problems(path) == [f"mqtt.command_public_key: decodes to 64 bytes, not 32; {WANTED_KEY}"]


def test_real_key_containing_a_placeholder_word_is_accepted(tmp_path: Path) -> None:
    key = base64.b64encode(b"\xc7\x1c\x71" * 10 + b"ok").decode()
    assert key.startswith("xxxx")

    settings = load_config(write(tmp_path, mqtt(key=key))).mqtt

    assert settings is not None
    assert settings.command_public_key == key


@pytest.mark.parametrize(
    ("prefix", "complaint"),
    [
        ("rental/+/v1", 'must not contain the MQTT wildcards "+" or "#"'),
        ("rental/#", 'must not contain the MQTT wildcards "+" or "#"'),
        ("/rental/v1", 'must not start or end with "/"; the gateway adds "/" before its id'),
        ("rental/v1/", 'must not start or end with "/"; the gateway adds "/" before its id'),
        ("rental//v1", 'must not contain an empty level ("//")'),
        ("$SYS/rental", 'must not start with "$"; brokers reserve those topics'),
        ("", 'must not be empty; the default is "rental/v1"'),
    ],
)
def test_bad_topic_prefix(tmp_path: Path, prefix: str, complaint: str) -> None:
    path = write(tmp_path, mqtt(f'topic_prefix = "{prefix}"'))

    assert problems(path) == [f"mqtt.topic_prefix: {complaint}"]


def test_mqtt_needs_host_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "\n[mqtt]\nport = 8883\n")

    assert problems(path) == [
        "mqtt.host: required key is missing",
        "mqtt.command_public_key: required key is missing",
    ]


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("rtsp://192.168.1.64:554/Streaming/Channels/102", "rtsp"),
        ("http://192.168.1.64/ISAPI/Streaming/channels/101/picture", "http"),
        ("https://cam.local/mjpeg", "http"),
        ("/dev/video0", "device"),
    ],
)
def test_camera_source(tmp_path: Path, source: str, kind: str) -> None:
    camera = load_config(write(tmp_path, MINIMAL + f'\n[camera]\nsource = "{source}"\n')).camera

    assert camera is not None
    assert (camera.source, camera.source_kind) == (source, kind)
    assert (camera.max_frame_age_ms, camera.retention_days, camera.jpeg_quality) == (1500, 30, 80)
    assert (camera.max_height, camera.min_free_mb) == (720, 500)


def test_camera_video_file_is_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "entry.mp4").write_bytes(b"\x00")
    camera = load_config(write(tmp_path, MINIMAL + '\n[camera]\nsource = "entry.mp4"\n')).camera

    assert camera is not None
    assert (camera.source, camera.source_kind) == (str(tmp_path / "entry.mp4"), "file")


NO_HOST = (
    'the {scheme}:// URL has no host; write e.g. "rtsp://user:password@192.168.1.64:554/…"'
)


@pytest.mark.parametrize(
    ("source", "complaint"),
    [
        ("rtsp://…", "is a placeholder; give the camera's stream URL, device or video file"),
        ("rtsp:///stream", NO_HOST.format(scheme="rtsp")),
        # What is left of a URL without a host may be its password: never echoed.
        ("rtsp://admin:s3cret@/stream", NO_HOST.format(scheme="rtsp")),
        (
            "ftp://cam/x.jpg",
            '"ftp://" is not supported; use rtsp://, http(s)://, /dev/videoN or a video file',
        ),
        ("missing.mp4", "file not found: {folder}/missing.mp4"),
    ],
)
def test_bad_camera_source(tmp_path: Path, source: str, complaint: str) -> None:
    path = write(tmp_path, MINIMAL + f'\n[camera]\nsource = "{source}"\n')

    assert problems(path) == [f"camera.source: {complaint.format(folder=tmp_path)}"]


def test_camera_jpeg_quality_range(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '\n[camera]\nsource = "/dev/video0"\njpeg_quality = 0\n')

    assert problems(path) == ["camera.jpeg_quality: must be between 1 and 100 (got 0)"]


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "gateway.local"])
def test_web_off_loopback_without_tls_is_refused(tmp_path: Path, host: str) -> None:
    path = write(tmp_path, MINIMAL + f'\n[web]\nhost = "{host}"\n')

    assert problems(path) == [
        f'web.host: "{host}" is reachable from the network, where passwords must not travel as'
        ' plain HTTP; set tls_cert_file and tls_key_file, or use host = "127.0.0.1"'
    ]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.1.1", "::1", "localhost"])
def test_web_on_loopback_may_use_plain_http(tmp_path: Path, host: str) -> None:
    web = load_config(write(tmp_path, MINIMAL + f'\n[web]\nhost = "{host}"\nport = 80\n')).web

    assert (web.host, web.port, web.tls) == (host, 80, False)


def test_web_off_loopback_with_tls(tmp_path: Path) -> None:
    pem_files(tmp_path, "web.pem", "web.key")
    text = (
        MINIMAL + '\n[web]\nhost = "0.0.0.0"\ntls_cert_file = "web.pem"\ntls_key_file = "web.key"\n'
    )

    web = load_config(write(tmp_path, text)).web

    assert web.tls
    assert web.tls_key_file == tmp_path / "web.key"


def test_web_certificate_without_key(tmp_path: Path) -> None:
    pem_files(tmp_path, "web.pem")
    path = write(tmp_path, MINIMAL + '\n[web]\ntls_cert_file = "web.pem"\n')

    assert problems(path) == ["web.tls_key_file: set tls_cert_file and tls_key_file together"]


def test_a_redirect_to_https_needs_https(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "\n[web]\nredirect_port = 80\n")

    assert problems(path) == [
        "web.redirect_port: a redirect to HTTPS needs tls_cert_file and tls_key_file"
    ]


def test_the_redirect_port_is_not_the_page_port(tmp_path: Path) -> None:
    pem_files(tmp_path, "web.pem", "web.key")
    text = MINIMAL + (
        '\n[web]\nhost = "0.0.0.0"\nport = 443\nredirect_port = 443\n'
        'tls_cert_file = "web.pem"\ntls_key_file = "web.key"\n'
    )

    assert problems(write(tmp_path, text)) == ["web.redirect_port: must differ from port (443)"]
