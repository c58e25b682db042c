"""How a server is told to send notices: the sender names the settings accept are exactly the ones
``notify/senders.py`` builds, and an unknown sender or a webhook without a URL is a one-line error
before the server starts."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from gpucommons.cli.up import settings_from_options
from gpucommons.config import Settings
from gpucommons.errors import ConfigError
from gpucommons.notify.senders import NO_SENDER, SENDERS, build_sender
from gpucommons.notify.smtp import SmtpSender
from gpucommons.notify.webhook import WebhookSender


def test_the_settings_name_exactly_the_senders_there_are() -> None:
    assert set(get_args(Settings.model_fields["notice_sender"].annotation)) == {NO_SENDER, *SENDERS}


def test_each_sender_is_built_from_its_settings(tmp_path: Path) -> None:
    assert build_sender(Settings(home=tmp_path)) is None
    smtp = build_sender(
        Settings(
            home=tmp_path,
            notice_sender="smtp",
            smtp_host="mail.example",
            smtp_port=587,
            smtp_starttls=True,
            smtp_user="ops",
            smtp_password="pw",  # type: ignore[arg-type]  # pydantic turns it into a SecretStr
        )
    )
    assert smtp == SmtpSender("mail.example", 587, "gpucommons@localhost", True, "ops", "pw")
    hook = build_sender(
        Settings(home=tmp_path, notice_sender="webhook", webhook_url="https://hooks.example/gpuc")
    )
    assert hook == WebhookSender("https://hooks.example/gpuc", "")


@pytest.mark.parametrize(
    ("options", "want"),
    [
        ({"notice_sender": "pigeon"}, "setting notice_sender: Input should be 'none', 'smtp' or 'webhook'"),
        ({"notice_sender": "webhook"}, "needs GPUC_WEBHOOK_URL"),
        ({"notice_sender": "webhook", "webhook_url": "ftp://x"}, "needs GPUC_WEBHOOK_URL"),
        ({"lifecycle_interval_s": 0}, "lifecycle_interval_s"),
        ({"notice_max_attempts": 0}, "notice_max_attempts"),
    ],
)
def test_a_bad_notice_setting_is_one_line(tmp_path: Path, options: dict[str, object], want: str) -> None:
    with pytest.raises(ConfigError) as error:
        settings_from_options(home=tmp_path, **options)
    assert want in str(error.value) and "\n" not in str(error.value)
