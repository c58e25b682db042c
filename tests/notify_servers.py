"""Real servers that notices are sent to in the tests: a local SMTP server (``aiosmtpd``) that keeps
every message it accepts, and a local HTTP server (stdlib ``http.server``) that keeps every POST and
answers from a script of statuses. Both listen on 127.0.0.1 and run on threads of their own."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Mail:
    """One message as the server took it: the envelope's recipients and the parsed message."""

    rcpt_tos: tuple[str, ...]
    message: EmailMessage


@dataclass
class MailServer:
    host: str
    port: int
    received: list[Mail] = field(default_factory=list)

    def kinds(self) -> list[str]:
        return [str(mail.message["X-Gpuc-Kind"]) for mail in self.received]


class _Inbox:
    def __init__(self, server: MailServer) -> None:
        self.server = server

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.server.received.append(Mail(tuple(envelope.rcpt_tos), message))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def mail_server() -> Iterator[MailServer]:
    """An SMTP server on a free local port for the length of the block."""
    server = MailServer(HOST, _free_port())
    controller = Controller(_Inbox(server), hostname=HOST, port=server.port)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


@dataclass(frozen=True)
class Post:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookServer:
    url: str
    statuses: list[int]  # answered in turn; when used up, 200
    posts: list[Post] = field(default_factory=list)


@contextmanager
def webhook_server(statuses: list[int] | None = None) -> Iterator[WebhookServer]:
    """An HTTP server on a free local port that records each POST and answers ``statuses`` in turn."""
    state = WebhookServer("", list(statuses or []))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.posts.append(Post(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # keep the test output quiet
            return

    httpd = ThreadingHTTPServer((HOST, 0), Handler)
    state.url = f"http://{HOST}:{httpd.server_address[1]}/hooks/gpuc"
    thread = threading.Thread(target=httpd.serve_forever, name="webhook-server", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
