"""Notices by mail: one message per notice to all its recipients, through ``smtplib``, with STARTTLS
and a login when configured. The message carries the notice's id and kind in ``X-Gpuc-Notice`` and
``X-Gpuc-Kind`` headers, so filters can sort it and a repeat delivery can be recognised."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from gpucommons.notify import DeliveryError, Notice


@dataclass(frozen=True)
class SmtpSender:
    host: str
    port: int
    sender: str
    starttls: bool = False
    user: str = ""
    password: str = ""
    timeout_s: float = 30.0
    name: str = "smtp"

    def message(self, notice: Notice) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = ", ".join(notice.recipients)
        msg["Subject"] = notice.subject
        msg["Date"] = format_datetime(notice.created_at)
        msg["Message-ID"] = make_msgid(f"notice-{notice.id}")
        msg["X-Gpuc-Notice"] = str(notice.id)
        msg["X-Gpuc-Kind"] = notice.kind
        msg.set_content(notice.body)
        return msg

    def send(self, notice: Notice) -> None:
        if not notice.recipients:
            raise DeliveryError(
                f"project {notice.project!r} has no PI or member with an e-mail address", permanent=True
            )
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self.password)
                smtp.send_message(self.message(notice))
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP {self.host}:{self.port}: {exc}") from exc
