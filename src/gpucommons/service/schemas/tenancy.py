"""Request and response bodies for institutions, projects, members, users and tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from gpucommons.domain.contact import EMAIL_PATTERN, MAX_EMAIL
from gpucommons.service.schemas.common import Days, Id, In, Line, Name, Out, Timestamp

InstitutionKind = Literal[
    "university", "research_institute", "sme", "startup", "consortium", "public_agency", "enterprise"
]
Region = Literal["capital", "non_capital"]
UserRole = Literal["admin", "reviewer", "user"]
ProjectRole = Literal["pi", "member"]


class InstitutionCreate(In):
    name: Name
    kind: InstitutionKind
    region: Region
    youth_startup: bool = False


class InstitutionRead(Out):
    id: int
    name: str
    kind: str
    region: str
    youth_startup: bool
    created_at: datetime


class ProjectCreate(In):
    name: Name
    institution_id: Id
    sovereign: bool = False


class ProjectRead(Out):
    id: int
    name: str
    institution_id: int
    sovereign: bool
    created_at: datetime


class MemberAdd(In):
    user_id: Id
    role: ProjectRole = "member"


class MemberRead(BaseModel):
    user_id: int
    name: str
    role: str


Email = Annotated[
    str,
    Field(max_length=MAX_EMAIL, pattern=EMAIL_PATTERN, description="one address; where notices go"),
]


class UserCreate(In):
    name: Name
    role: UserRole = "user"
    email: Email | None = None


class UserUpdate(In):
    email: Email | None = Field(description="null: no notices are mailed to this user")


class UserRead(Out):
    id: int
    name: str
    role: str
    email: str | None
    created_at: datetime


class WhoAmI(BaseModel):
    id: int
    name: str
    role: str
    projects: dict[int, str]


class TokenCreate(In):
    """Expiry: ``expires_at``, or ``expires_days`` from now, or (neither) the server's default
    (``GPUC_TOKEN_EXPIRY_DAYS``, 90 days)."""

    expires_at: Timestamp | None = None
    expires_days: Days | None = None
    label: Line = ""


class TokenCreated(BaseModel):
    """The raw ``token`` appears only in this response; the server keeps its SHA-256."""

    id: int
    user_id: int
    token: str
    expires_at: datetime | None
    created_at: datetime


class TokenRead(BaseModel):
    """A token as listed: never its secret. ``state`` is ``active``, ``expired`` or ``revoked``;
    ``current`` marks the token the request itself carried."""

    id: int
    label: str
    user_id: int
    user: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    state: Literal["active", "expired", "revoked"]
    current: bool = False
