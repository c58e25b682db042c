"""The sender a server uses, by name (``GPUC_NOTICE_SENDER``): the one place names are looked up."""

from __future__ import annotations

from collections.abc import Callable

from gpucommons.config import Settings
from gpucommons.errors import UnknownNameError
from gpucommons.notify import NoticeSender
from gpucommons.notify.smtp import SmtpSender
from gpucommons.notify.webhook import WebhookSender


def _smtp(settings: Settings) -> NoticeSender:
    return SmtpSender(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from,
        starttls=settings.smtp_starttls,
        user=settings.smtp_user,
        password=settings.smtp_password.get_secret_value(),
    )


def _webhook(settings: Settings) -> NoticeSender:
    return WebhookSender(settings.webhook_url, settings.webhook_secret.get_secret_value())


SENDERS: dict[str, Callable[[Settings], NoticeSender]] = {"smtp": _smtp, "webhook": _webhook}
NO_SENDER = "none"  # notices stay in the outbox, listed by ``gpuc notice list``


def build_sender(settings: Settings) -> NoticeSender | None:
    """The configured sender, or ``None`` when notices are only kept."""
    if settings.notice_sender == NO_SENDER:
        return None
    try:
        factory = SENDERS[settings.notice_sender]
    except KeyError:
        raise UnknownNameError(
            f"unknown notice sender {settings.notice_sender!r}; known: "
            f"{', '.join([NO_SENDER, *sorted(SENDERS)])}"
        ) from None
    return factory(settings)
