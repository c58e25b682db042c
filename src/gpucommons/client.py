"""Typed Python client of the commons' REST API (httpx).

Errors come back as the package's own classes with the server's one-line detail: the class the
server's ``Gpuc-Error`` header names, checked against the status in ``gpucommons.errors.ERROR_STATUS``
(the table the server answers from), so each class raised on the server is raised again here. Without
the header the status alone decides (400, shared by several classes, gives ``GpucError``); an
unreachable server or a 5xx is a plain ``GpucError``. Build one with
``GpucClient(url, token)``, ``GpucClient.from_env(home)`` (``GPUC_URL``/``GPUC_TOKEN`` or the stored
credentials), or hand it an ``httpx.Client`` (tests pass FastAPI's ``TestClient``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from gpucommons.cli.credentials import resolve_credentials
from gpucommons.errors import ERROR_HEADER, GpucError, error_class
from gpucommons.service.schemas.allocation import (
    AwardRead,
    ProgramRead,
    ProposalRead,
    ReclaimRead,
    ReviewRead,
)
from gpucommons.service.schemas.arrays import ArrayRead, ArrayWhyRead
from gpucommons.service.schemas.jobs import (
    BalanceRead,
    CheckpointRead,
    JobEventRead,
    JobRead,
    LogChunk,
    WhyRead,
)
from gpucommons.service.schemas.lifecycle import LifecycleReportRead, NoticeRead, ReclaimRuleRead
from gpucommons.service.schemas.nodes import NodeRead
from gpucommons.service.schemas.reports import ComputeLedgerRead, TransparencyRead, UsageReportRead
from gpucommons.service.schemas.reservations import ReservationRead
from gpucommons.service.schemas.targets import TargetRead, TargetReportRead
from gpucommons.service.schemas.tenancy import (
    InstitutionRead,
    MemberRead,
    ProjectRead,
    TokenCreated,
    TokenRead,
    UserRead,
    WhoAmI,
)

T = TypeVar("T")
TIMEOUT_S = 30.0


def error_from_response(response: httpx.Response) -> GpucError:
    """The error an error response stands for, carrying the server's one-line ``detail``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = str(body["detail"]) if isinstance(body, dict) and "detail" in body else response.text
    detail = " ".join(detail.split()) or response.reason_phrase
    status = response.status_code
    if status >= 500:
        return GpucError(f"server error {status}: {detail}")
    return error_class(status, response.headers.get(ERROR_HEADER))(detail)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class GpucClient:
    """One method per API operation; part of the public API (job methods live alongside)."""

    def __init__(self, url: str, token: str = "", *, http: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if http is None:
            http = httpx.Client(base_url=self.url, timeout=TIMEOUT_S)
        http.headers.update(headers)
        self._http = http

    @classmethod
    def from_env(cls, home: Path) -> GpucClient:
        creds = resolve_credentials(home)
        return cls(creds.url, creds.token)

    def close(self) -> None:
        self._http.close()

    # plumbing -----------------------------------------------------------------------------------------

    def request(self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """Send one request; return the decoded JSON body (``None`` for 204) or raise the mapped error."""
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise GpucError(f"cannot reach the gpucommons server at {self.url}: {exc}") from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        return None if response.status_code == 204 or not response.content else response.json()

    def _get(self, model: type[T], method: str, path: str, json: Any = None, **params: Any) -> T:
        query = {k: v for k, v in params.items() if v is not None}
        return TypeAdapter(model).validate_python(self.request(method, path, json, query or None))

    # tenancy ------------------------------------------------------------------------------------------

    def whoami(self) -> WhoAmI:
        return self._get(WhoAmI, "GET", "/users/me")

    def create_institution(
        self, name: str, kind: str, region: str, youth_startup: bool = False
    ) -> InstitutionRead:
        body = {"name": name, "kind": kind, "region": region, "youth_startup": youth_startup}
        return self._get(InstitutionRead, "POST", "/institutions", body)

    def list_institutions(self) -> list[InstitutionRead]:
        return self._get(list[InstitutionRead], "GET", "/institutions")

    def create_project(self, name: str, institution_id: int, sovereign: bool = False) -> ProjectRead:
        body = {"name": name, "institution_id": institution_id, "sovereign": sovereign}
        return self._get(ProjectRead, "POST", "/projects", body)

    def list_projects(self) -> list[ProjectRead]:
        return self._get(list[ProjectRead], "GET", "/projects")

    def get_project(self, project_id: int) -> ProjectRead:
        return self._get(ProjectRead, "GET", f"/projects/{project_id}")

    def list_members(self, project_id: int) -> list[MemberRead]:
        return self._get(list[MemberRead], "GET", f"/projects/{project_id}/members")

    def add_member(self, project_id: int, user_id: int, role: str = "member") -> MemberRead:
        body = {"user_id": user_id, "role": role}
        return self._get(MemberRead, "POST", f"/projects/{project_id}/members", body)

    def remove_member(self, project_id: int, user_id: int) -> None:
        self.request("DELETE", f"/projects/{project_id}/members/{user_id}")

    def create_user(self, name: str, role: str = "user", email: str | None = None) -> UserRead:
        return self._get(UserRead, "POST", "/users", {"name": name, "role": role, "email": email})

    def set_user_email(self, user_id: int, email: str | None) -> UserRead:
        """Where the user's notices are mailed (``None``: nowhere); an admin, or the user themselves."""
        return self._get(UserRead, "PATCH", f"/users/{user_id}", {"email": email})

    def list_users(self) -> list[UserRead]:
        return self._get(list[UserRead], "GET", "/users")

    def create_token(
        self,
        user_id: int | None = None,
        expires_at: datetime | None = None,
        label: str = "",
        expires_days: int | None = None,
    ) -> TokenCreated:
        """A token for ``user_id`` (admins), or for the caller when ``user_id`` is ``None``; without
        ``expires_at`` or ``expires_days`` it expires after the server's default."""
        path = "/users/me/tokens" if user_id is None else f"/users/{user_id}/tokens"
        body: dict[str, Any] = {"expires_at": _iso(expires_at), "label": label}
        if expires_days is not None:
            body["expires_days"] = expires_days
        return self._get(TokenCreated, "POST", path, body)

    def list_tokens(self, user_id: int | None = None) -> list[TokenRead]:
        """The caller's tokens (an admin: everyone's, or ``user_id``'s); never their secrets."""
        return self._get(list[TokenRead], "GET", "/tokens", user_id=user_id)

    def revoke_token(self, token_id: int) -> TokenRead:
        return self._get(TokenRead, "DELETE", f"/tokens/{token_id}")

    # reports ------------------------------------------------------------------------------------------

    def usage_report(self, by: str, period: str | None = None, every: str | None = None) -> UsageReportRead:
        return self._get(UsageReportRead, "GET", "/reports/usage", by=by, period=period, every=every)

    def compute_ledger(self, by: str = "project") -> ComputeLedgerRead:
        return self._get(ComputeLedgerRead, "GET", "/reports/compute", by=by)

    def transparency_report(self, project: str) -> TransparencyRead:
        return self._get(TransparencyRead, "GET", f"/reports/compute/{quote(project, safe='')}")

    # declared targets ---------------------------------------------------------------------------------

    def create_target(self, **fields: Any) -> TargetRead:
        """Declare a target (``TargetCreate``'s fields); admins."""
        return self._get(TargetRead, "POST", "/targets", fields)

    def list_targets(self) -> list[TargetRead]:
        return self._get(list[TargetRead], "GET", "/targets")

    def delete_target(self, target_id: int) -> None:
        self.request("DELETE", f"/targets/{target_id}")

    def target_report(self, period: str | None = None) -> TargetReportRead:
        """Every target over ``period`` (default: each over its latest closed period)."""
        return self._get(TargetReportRead, "GET", "/targets/attainment", period=period)

    # reservations -------------------------------------------------------------------------------------

    def create_reservation(self, **fields: Any) -> ReservationRead:
        """Reserve whole nodes for a project (``ReservationCreate``'s fields; ``start_at`` a datetime or
        ISO text); admins, or the project's PIs within its awards."""
        if isinstance(fields.get("start_at"), datetime):
            fields["start_at"] = fields["start_at"].isoformat()
        return self._get(ReservationRead, "POST", "/reservations", fields)

    def list_reservations(
        self, project: str | None = None, include_past: bool = False
    ) -> list[ReservationRead]:
        """Those still to end (with ``include_past``, cancelled and ended ones too)."""
        return self._get(
            list[ReservationRead], "GET", "/reservations", project=project, all=include_past or None
        )

    def get_reservation(self, reservation_id: int) -> ReservationRead:
        return self._get(ReservationRead, "GET", f"/reservations/{reservation_id}")

    def cancel_reservation(self, reservation_id: int) -> ReservationRead:
        return self._get(ReservationRead, "POST", f"/reservations/{reservation_id}/cancel")

    # nodes --------------------------------------------------------------------------------------------

    def list_nodes(self) -> list[NodeRead]:
        return self._get(list[NodeRead], "GET", "/nodes")

    def drain_node(self, name: str, reason: str) -> NodeRead:
        return self._get(NodeRead, "POST", f"/nodes/{quote(name, safe='')}/drain", {"reason": reason})

    def resume_node(self, name: str) -> NodeRead:
        return self._get(NodeRead, "POST", f"/nodes/{quote(name, safe='')}/resume")

    # allocation ---------------------------------------------------------------------------------------

    def create_program(self, **fields: Any) -> ProgramRead:
        return self._get(ProgramRead, "POST", "/programs", fields)

    def list_programs(self) -> list[ProgramRead]:
        return self._get(list[ProgramRead], "GET", "/programs")

    def get_program(self, program_id: int) -> ProgramRead:
        return self._get(ProgramRead, "GET", f"/programs/{program_id}")

    def set_program_open(self, program_id: int, is_open: bool) -> ProgramRead:
        return self._get(ProgramRead, "POST", f"/programs/{program_id}/{'open' if is_open else 'close'}")

    def submit_proposal(
        self, program_id: int, project_id: int, requested_gpus: int, justification: str = ""
    ) -> ProposalRead:
        body = {
            "program_id": program_id,
            "project_id": project_id,
            "requested_gpus": requested_gpus,
            "justification": justification,
        }
        return self._get(ProposalRead, "POST", "/proposals", body)

    def list_proposals(self, program_id: int | None = None) -> list[ProposalRead]:
        return self._get(list[ProposalRead], "GET", "/proposals", program_id=program_id)

    def get_proposal(self, proposal_id: int) -> ProposalRead:
        return self._get(ProposalRead, "GET", f"/proposals/{proposal_id}")

    def reject_proposal(self, proposal_id: int) -> ProposalRead:
        return self._get(ProposalRead, "POST", f"/proposals/{proposal_id}/reject")

    def review_proposal(self, proposal_id: int, score: int, comment: str = "") -> ReviewRead:
        body = {"score": score, "comment": comment}
        return self._get(ReviewRead, "POST", f"/proposals/{proposal_id}/reviews", body)

    def list_reviews(self, proposal_id: int) -> list[ReviewRead]:
        return self._get(list[ReviewRead], "GET", f"/proposals/{proposal_id}/reviews")

    def create_award(self, **fields: Any) -> AwardRead:
        body = {k: (_iso(v) if isinstance(v, datetime) else v) for k, v in fields.items()}
        return self._get(AwardRead, "POST", "/awards", body)

    def list_awards(self, program_id: int | None = None) -> list[AwardRead]:
        return self._get(list[AwardRead], "GET", "/awards", program_id=program_id)

    def get_award(self, award_id: int) -> AwardRead:
        return self._get(AwardRead, "GET", f"/awards/{award_id}")

    def auto_award(self, program_id: int, starts_at: datetime | None = None) -> list[AwardRead]:
        body = {"starts_at": _iso(starts_at)}
        return self._get(list[AwardRead], "POST", f"/programs/{program_id}/auto-award", body)

    def activate_award(self, award_id: int) -> AwardRead:
        return self._get(AwardRead, "POST", f"/awards/{award_id}/activate")

    def extend_award(self, award_id: int, ends_at: datetime) -> AwardRead:
        return self._get(AwardRead, "POST", f"/awards/{award_id}/extend", {"ends_at": _iso(ends_at)})

    def expire_awards(self) -> list[AwardRead]:
        return self._get(list[AwardRead], "POST", "/awards/expire")

    def reclaim_unused(self, utilization_by_award: dict[int, float]) -> list[ReclaimRead]:
        body = {"utilization_by_award": {str(k): v for k, v in utilization_by_award.items()}}
        return self._get(list[ReclaimRead], "POST", "/awards/reclaim", body)

    def list_reclaims(self, award_id: int) -> list[ReclaimRead]:
        return self._get(list[ReclaimRead], "GET", f"/awards/{award_id}/reclaims")

    # lifecycle ----------------------------------------------------------------------------------------

    def run_lifecycle(self, now: datetime | None = None) -> LifecycleReportRead:
        """One lifecycle step at ``now`` (default: the server's clock); admins."""
        return self._get(LifecycleReportRead, "POST", "/lifecycle/run", {"now": _iso(now)})

    def get_reclaim_rule(self, program_id: int) -> ReclaimRuleRead:
        return self._get(ReclaimRuleRead, "GET", f"/programs/{program_id}/reclaim-rule")

    def set_reclaim_rule(
        self, program_id: int, table: list[list[float]] | None, period_days: int, warning_days: int
    ) -> ReclaimRuleRead:
        """Replace the program's rule (``table`` ``None``: the default table)."""
        body = {"table": table, "period_days": period_days, "warning_days": warning_days}
        return self._get(ReclaimRuleRead, "PUT", f"/programs/{program_id}/reclaim-rule", body)

    def list_notices(self, unsent: bool = False, limit: int | None = None) -> list[NoticeRead]:
        return self._get(list[NoticeRead], "GET", "/notices", unsent=unsent or None, limit=limit)

    # jobs ---------------------------------------------------------------------------------------------

    def submit_job(self, **fields: Any) -> JobRead:
        """Fields of ``JobCreate``: project, gpus, command or script, models, time_limit, sovereign, ..."""
        return self._get(JobRead, "POST", "/jobs", fields)

    def list_jobs(
        self,
        states: list[str] | None = None,
        project: str | None = None,
        limit: int = 200,
        *,
        array: int | None = None,
        tasks: bool = True,
    ) -> list[JobRead]:
        """Jobs in line order; ``array``: only that job array's tasks; ``tasks=False``: no array's."""
        return self._get(
            list[JobRead],
            "GET",
            "/jobs",
            state=states or None,
            project=project,
            limit=limit,
            array=array,
            tasks=None if tasks else False,
        )

    def get_job(self, job_id: int) -> JobRead:
        return self._get(JobRead, "GET", f"/jobs/{job_id}")

    def job_events(self, job_id: int) -> list[JobEventRead]:
        """The job's history, oldest first (design note 0017)."""
        return self._get(list[JobEventRead], "GET", f"/jobs/{job_id}/events")

    def cancel_job(self, job_id: int) -> JobRead:
        return self._get(JobRead, "POST", f"/jobs/{job_id}/cancel")

    def report_checkpoint(self, job_id: int) -> CheckpointRead:
        """Record that the job wrote a checkpoint now: with a member's token, or inside the job with
        its run's own (``GpucClient(url, os.environ["GPUC_JOB_TOKEN"])``)."""
        return self._get(CheckpointRead, "POST", f"/jobs/{job_id}/checkpoint")

    def why_job(self, job_id: int) -> WhyRead:
        return self._get(WhyRead, "GET", f"/jobs/{job_id}/why")

    def submit_array(self, **fields: Any) -> ArrayRead:
        """Fields of ``ArrayCreate``: a job's fields and ``array``, the spec (``0-999%50``)."""
        return self._get(ArrayRead, "POST", "/arrays", fields)

    def list_arrays(
        self, project: str | None = None, every: bool = False, limit: int = 200
    ) -> list[ArrayRead]:
        """Arrays with a pending or running task (``every``: all of them)."""
        return self._get(
            list[ArrayRead], "GET", "/arrays", project=project, limit=limit, all=True if every else None
        )

    def get_array(self, array_id: int) -> ArrayRead:
        return self._get(ArrayRead, "GET", f"/arrays/{array_id}")

    def array_task(self, array_id: int, task_id: int) -> JobRead:
        return self._get(JobRead, "GET", f"/arrays/{array_id}/tasks/{task_id}")

    def why_array(self, array_id: int) -> ArrayWhyRead:
        return self._get(ArrayWhyRead, "GET", f"/arrays/{array_id}/why")

    def cancel_array(self, array_id: int) -> ArrayRead:
        return self._get(ArrayRead, "POST", f"/arrays/{array_id}/cancel")

    def job_logs(self, job_id: int, stream: str = "stdout", offset: int = 0) -> LogChunk:
        return self._get(LogChunk, "GET", f"/jobs/{job_id}/logs", stream=stream, offset=offset)

    def usage(self, project: str | None = None) -> list[BalanceRead]:
        return self._get(list[BalanceRead], "GET", "/usage", project=project)
