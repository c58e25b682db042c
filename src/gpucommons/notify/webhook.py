"""Notices by webhook: each notice POSTed as one JSON object (``payload``), compact with sorted keys,
so the bytes signed are the bytes sent. With a secret, ``X-Gpuc-Signature: sha256=<hex>`` is the
HMAC-SHA256 of the body under it; a receiver recomputes it to know the notice came from this commons.
Any answer but a 2xx is a failed attempt, tried again later."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

import httpx

from gpucommons.notify import DeliveryError, Notice

SIGNATURE_HEADER = "X-Gpuc-Signature"
NOTICE_HEADER = "X-Gpuc-Notice"


def payload(notice: Notice) -> dict[str, Any]:
    return {
        "id": notice.id,
        "kind": notice.kind,
        "project_id": notice.project_id,
        "project": notice.project,
        "award_id": notice.award_id,
        "recipients": list(notice.recipients),
        "subject": notice.subject,
        "body": notice.body,
        "created_at": notice.created_at.isoformat(),
    }


def signature(secret: str, body: bytes) -> str:
    """The signature header's value for ``body`` under ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class WebhookSender:
    url: str
    secret: str = ""
    timeout_s: float = 10.0
    name: str = "webhook"

    def send(self, notice: Notice) -> None:
        body = json.dumps(payload(notice), sort_keys=True, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", NOTICE_HEADER: str(notice.id)}
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, body)
        try:
            response = httpx.post(self.url, content=body, headers=headers, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook {self.url}: {exc}") from exc
        if not response.is_success:
            raise DeliveryError(f"webhook {self.url} answered {response.status_code}")
