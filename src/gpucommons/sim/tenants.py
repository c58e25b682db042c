"""Who the simulated commons serves: a tenants file gives each trace tenant its award, kind and residency.

A trace knows only tenant ids; the commons' rules need more: what each tenant was awarded (the award
stage and the quota's guarantees), what kind of institution it is (reports group by kind) and whether
its data must stay on sovereign sites. The file is a CSV with a header; lines starting with ``#`` are
comments (provenance, licence)::

    tenant,kind,awarded_gpus,funded,region,sovereign,gpu_hours,model
    fm-consortium-a,consortium,1024,true,capital,true,,B200
    univ-noncapital-1,university,256,true,non-capital,false,500000,H200
    startup-capital-3,startup,0,false,capital,false,,

- ``tenant``, ``kind``, ``awarded_gpus`` are required; the rest are optional columns, and an empty cell
  takes the default. ``note`` is free text and ignored; any other column is an error (a misspelt
  ``sovereign`` must not silently let data leave sovereign sites).
- ``awarded_gpus``: the guaranteed GPUs (an integer >= 0). ``funded`` (default true): a tenant with
  ``funded = false`` or ``awarded_gpus = 0`` is best-effort: it holds no award and no guarantee, so it
  runs only on idle capacity it borrows (never with borrowing off). ``gpu_hours``: the award's
  budget (empty: unlimited), in ``unit``: ``device-hours`` (default: an hour of whatever device ran)
  or ``reference-hours`` (an hour of the cluster's reference model; design note 0009). ``model``: the
  accelerator model the award pays for (empty: any); it must exist in the cluster.
- ``kind``: an institution kind of the commons (``INSTITUTION_KINDS``, the same list the service stores);
  ``region``: ``capital`` or ``non-capital``; ``sovereign`` (default false): its jobs stay on sovereign
  sites.

Every award is active for the whole run; award ids are 1, 2, ... in file order. Errors are one line
naming the file, the line and the field.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gpucommons.domain.accelerators import CATALOG
from gpucommons.domain.award import AWARD_UNITS, DEVICE_HOURS, Award
from gpucommons.domain.institution import INSTITUTION_KINDS
from gpucommons.errors import ConfigError
from gpucommons.textfile import read_text

Unlisted = Literal["error", "best-effort"]
UNLISTED_CHOICES: tuple[Unlisted, ...] = ("error", "best-effort")
UNLISTED_KIND = "unlisted"  # the kind of a trace tenant the file leaves out, under unlisted="best-effort"
REGIONS = {"capital": "capital", "non-capital": "non-capital", "non_capital": "non-capital"}
REQUIRED = ("tenant", "kind", "awarded_gpus")
OPTIONAL = ("funded", "region", "sovereign", "gpu_hours", "unit", "model", "note")
SHOWN_UNKNOWN = 5  # unknown trace tenants named in the error


@dataclass(frozen=True, slots=True)
class TenantRow:
    tenant: str
    kind: str
    awarded_gpus: int
    funded: bool = True
    region: str = ""
    sovereign: bool = False
    gpu_hours_budget: float | None = None  # None: unlimited
    model: str | None = None  # None: any model
    unit: str = DEVICE_HOURS

    @property
    def best_effort(self) -> bool:
        """No guarantee and no award: unfunded, or funded with nothing awarded."""
        return not self.funded or self.awarded_gpus == 0


@dataclass(frozen=True)
class TenantTable:
    """The rows of a tenants file, in file order, and what the simulator needs from them."""

    rows: tuple[TenantRow, ...]
    source: str = "tenants"

    def awards(self) -> dict[str, tuple[Award, ...]]:
        """Each tenant's awards: one per funded row (ids 1.. in file order), none for best-effort ones."""
        out: dict[str, tuple[Award, ...]] = {}
        next_id = 1
        for row in self.rows:
            if row.best_effort:
                out[row.tenant] = ()
                continue
            models = frozenset({row.model}) if row.model else frozenset()
            out[row.tenant] = (
                Award(next_id, row.tenant, row.awarded_gpus, models, row.gpu_hours_budget, unit=row.unit),
            )
            next_id += 1
        return out

    def kinds(self) -> dict[str, str]:
        return {row.tenant: row.kind for row in self.rows}

    def regions(self) -> dict[str, str]:
        return {row.tenant: row.region for row in self.rows if row.region}

    def sovereign(self) -> frozenset[str]:
        return frozenset(row.tenant for row in self.rows if row.sovereign)

    def quotas(self) -> dict[str, int]:
        """Guaranteed GPUs per tenant: the award for funded tenants, 0 for best-effort ones."""
        return {row.tenant: 0 if row.best_effort else row.awarded_gpus for row in self.rows}

    def cover(self, trace_tenants: Iterable[str], unlisted: Unlisted = "error") -> TenantTable:
        """The table with a row for every tenant of the trace. A tenant the file leaves out is an error,
        since a typo would otherwise run a funded tenant's work as best-effort; with ``"best-effort"`` it
        gets a best-effort row (kind ``unlisted``, no award) appended after the file's rows."""
        listed = {row.tenant for row in self.rows}
        missing = sorted(set(trace_tenants) - listed)
        if not missing:
            return self
        if unlisted == "error":
            shown = ", ".join(missing[:SHOWN_UNKNOWN]) + (", ..." if len(missing) > SHOWN_UNKNOWN else "")
            raise ConfigError(
                f"{self.source}: {len(missing)} tenant(s) of the trace are not listed: {shown} "
                '(add them, or run them best-effort with --unlisted best-effort / unlisted = "best-effort")'
            )
        extra = tuple(TenantRow(t, UNLISTED_KIND, 0, funded=False) for t in missing)
        return TenantTable(self.rows + extra, self.source)


def parse_unlisted(value: str, option: str = "--unlisted") -> Unlisted:
    for choice in UNLISTED_CHOICES:
        if value == choice:
            return choice
    raise ConfigError(f"{option} must be error or best-effort, got {value!r}")


def read_tenants(path: Path, models: Collection[str] = tuple(CATALOG)) -> TenantTable:
    """Read and validate a tenants file; ``models`` are the accelerator models an award may name: the
    cluster's, so that no award pays only for hardware the run does not have (default: the catalog)."""
    text = read_text(path, "tenants file")
    return parse_tenants(text, str(path), models)


def parse_tenants(text: str, source: str, models: Collection[str] = tuple(CATALOG)) -> TenantTable:
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if _is_data(line)]
    if not lines:
        raise ConfigError(f"{source}: no header; need the columns {', '.join(REQUIRED)}")
    header_line, header = lines[0]
    columns = [c.strip() for c in next(csv.reader([header]))]
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise ConfigError(f"{source}: missing column(s) {', '.join(missing)}")
    unknown = [c for c in columns if c not in REQUIRED + OPTIONAL]
    if unknown:
        raise ConfigError(
            f"{source}:{header_line}: unknown column(s) {', '.join(unknown)}; "
            f"known: {', '.join(REQUIRED + OPTIONAL)}"
        )
    known = {m.lower(): m for m in models}
    rows: list[TenantRow] = []
    seen: set[str] = set()
    for number, line in lines[1:]:
        cells = [c.strip() for c in next(csv.reader([line]))]
        if len(cells) != len(columns):
            raise ConfigError(f"{source}:{number}: {len(cells)} cells, the header has {len(columns)}")
        row = _parse_row(f"{source}:{number}", dict(zip(columns, cells, strict=True)), known)
        if row.tenant in seen:
            raise ConfigError(f"{source}:{number}: tenant {row.tenant!r} is listed twice")
        seen.add(row.tenant)
        rows.append(row)
    return TenantTable(tuple(rows), source)


def _is_data(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _parse_row(where: str, cells: Mapping[str, str], models: Mapping[str, str]) -> TenantRow:
    tenant = cells["tenant"]
    if not tenant:
        raise ConfigError(f"{where}: tenant is empty")
    kind = cells["kind"]
    if kind not in INSTITUTION_KINDS:
        raise ConfigError(f"{where}: kind {kind!r} is not one of {', '.join(INSTITUTION_KINDS)}")
    region = cells.get("region", "")
    if region and region not in REGIONS:
        raise ConfigError(f"{where}: region must be capital or non-capital, got {region!r}")
    model = cells.get("model", "") or None
    if model is not None:
        if model.lower() not in models:
            known = ", ".join(sorted(models.values()))
            raise ConfigError(f"{where}: model {model!r} is not a model of the cluster ({known})")
        model = models[model.lower()]
    unit = cells.get("unit", "") or DEVICE_HOURS
    if unit not in AWARD_UNITS:
        raise ConfigError(f"{where}: unit must be {' or '.join(AWARD_UNITS)}, got {unit!r}")
    return TenantRow(
        tenant=tenant,
        kind=kind,
        awarded_gpus=_gpus(where, cells["awarded_gpus"]),
        funded=_boolean(where, "funded", cells.get("funded", ""), default=True),
        region=REGIONS.get(region, ""),
        sovereign=_boolean(where, "sovereign", cells.get("sovereign", ""), default=False),
        gpu_hours_budget=_budget(where, cells.get("gpu_hours", "")),
        model=model,
        unit=unit,
    )


def _gpus(where: str, text: str) -> int:
    try:
        gpus = int(text)
    except ValueError:
        raise ConfigError(f"{where}: awarded_gpus must be a whole number >= 0, got {text!r}") from None
    if gpus < 0:
        raise ConfigError(f"{where}: awarded_gpus must be >= 0, got {gpus}")
    return gpus


def _boolean(where: str, column: str, text: str, default: bool) -> bool:
    value = text.lower()
    if not value:
        return default
    if value in ("true", "false"):
        return value == "true"
    raise ConfigError(f"{where}: {column} must be true or false, got {text!r}")


def _budget(where: str, text: str) -> float | None:
    if not text:
        return None
    try:
        hours = float(text)
    except ValueError:
        raise ConfigError(f"{where}: gpu_hours must be a number >= 0 or empty, got {text!r}") from None
    if not (hours >= 0 and math.isfinite(hours)):
        raise ConfigError(f"{where}: gpu_hours must be a finite number >= 0 (empty: unlimited), got {text!r}")
    return hours
