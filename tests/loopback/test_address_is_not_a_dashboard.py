"""An address where something else answers (an S3 port's XML, a web page, a gRPC port's bytes), or
Ray's GCS port, is bad input naming where the address came from: exit 2, nothing submitted. Through
the real command line, on loopback servers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.cli import raypod
from tests.support.scripted_server import Answer, ScriptedServer

S3_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchBucket</Code>'
    b"<Message>The specified bucket does not exist</Message><BucketName>api</BucketName></Error>"
)
PAGE = b"<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head><body>hello</body></html>"
#: What Ray's GCS (gRPC, HTTP/2) sends to an HTTP/1.1 request: a SETTINGS frame, then it closes.
GRPC_BYTES = b"\x00\x00\x12\x04\x00\x00\x00\x00\x00\x00\x04\x00\x00\xff\xff\x00\x06\x00\x00 \x00\xfe\x03"

ANSWERS = {
    "s3-xml": (Answer(404, S3_ERROR, "application/xml"), "NoSuchBucket"),
    "html-page": (Answer(200, PAGE, "text/html"), "Welcome to nginx!"),
}


@contextmanager
def bytes_server(reply: bytes) -> Iterator[str]:
    """A TCP port that answers every connection with ``reply`` (no HTTP), then closes it."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(5)
                try:
                    connection.recv(65536)
                    connection.sendall(reply)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        done.set()
        thread.join(timeout=5)
        listener.close()


def submit(address: str, tmp_path: Path, *extra: str) -> list[str]:
    script = tmp_path / "job.py"
    script.write_text("print('hi')\n")
    return ["submit", "--address", address, "--script", str(script), "--connect-timeout", "5", *extra]


@pytest.mark.parametrize("kind", sorted(ANSWERS))
@pytest.mark.parametrize("command", ["list", "submit"])
def test_an_answer_no_ray_dashboard_gives_is_named_as_such_and_nothing_is_submitted(
    tmp_path: Path, kind: str, command: str
) -> None:
    answer, quoted = ANSWERS[kind]
    with ScriptedServer() as server:
        server.route("GET", "*", answer)
        args = ["list", "--address", server.url] if command == "list" else submit(server.url, tmp_path)

        result = raypod(*args, timeout=60)

        assert result.returncode == 2, result.stderr
        assert f"--address: {server.url} is not a Ray dashboard (HTTP {answer.status}: " in result.stderr
        assert quoted in result.stderr
        assert server.count("POST") == 0 and server.count("PUT") == 0
        assert server.count("GET", "/api/version") == 1  # a stranger's answer is not asked again
        assert result.stdout == ""


@pytest.mark.parametrize("command", ["list", "submit"])
def test_a_port_that_answers_bytes_that_are_not_http_is_not_a_ray_dashboard(tmp_path: Path, command: str) -> None:
    with bytes_server(GRPC_BYTES) as address:
        args = ["list", "--address", address] if command == "list" else submit(address, tmp_path)

        result = raypod(*args, timeout=60)

    assert result.returncode == 2, result.stderr
    assert f"--address: {address} is not a Ray dashboard (not an HTTP answer: " in result.stderr
    assert "\x00" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["list"], ["status", "job-x"], ["submit"]])
def test_rays_gcs_port_in_ray_address_is_bad_input_naming_the_variable(tmp_path: Path, command: list[str]) -> None:
    args = submit("", tmp_path)[:1] + submit("", tmp_path)[3:] if command == ["submit"] else command

    result = raypod(*args, env={"RAY_ADDRESS": "127.0.0.1:6379"}, timeout=60)

    assert result.returncode == 2, result.stderr
    assert "RAY_ADDRESS=http://127.0.0.1:6379 is Ray's GCS port" in result.stderr
    assert ":8265" in result.stderr and "RAY_API_SERVER_ADDRESS" in result.stderr


def test_the_gcs_port_given_as_address_names_the_flag(tmp_path: Path) -> None:
    result = raypod("list", "--address", "http://127.0.0.1:6379", timeout=60)

    assert result.returncode == 2, result.stderr
    assert "--address: --address http://127.0.0.1:6379 is Ray's GCS port" in result.stderr
