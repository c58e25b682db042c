"""Who holds awards: the kinds of institution the commons serves. One list, read by the service's
tables, the simulator's tenants file and the reports, so a kind means the same everywhere."""

from __future__ import annotations

INSTITUTION_KINDS = (
    "university",
    "research_institute",
    "sme",
    "startup",
    "consortium",
    "public_agency",
    "enterprise",
)
