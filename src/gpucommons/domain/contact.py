"""How the commons reaches people: the shape of an e-mail address it accepts, shared by the API's
schema (a 422 before any route runs) and the store (which refuses it even without the API). One
address, no display name and nothing that separates addresses in a list, so recipients can be joined."""

from __future__ import annotations

MAX_EMAIL = 320  # RFC 5321: 64 for the local part, 255 for the domain, and the @
EMAIL_PATTERN = r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$"
