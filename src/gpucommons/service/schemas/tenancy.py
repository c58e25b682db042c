"""Request and response bodies for institutions, projects, members, users and tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

InstitutionKind = Literal[
    "university", "research_institute", "sme", "startup", "consortium", "public_agency", "enterprise"
]
Region = Literal["capital", "non_capital"]
UserRole = Literal["admin", "reviewer", "user"]
ProjectRole = Literal["pi", "member"]
Name = Field(min_length=1, max_length=200)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class InstitutionCreate(_In):
    name: str = Name
    kind: InstitutionKind
    region: Region
    youth_startup: bool = False


class InstitutionRead(_Out):
    id: int
    name: str
    kind: str
    region: str
    youth_startup: bool
    created_at: datetime


class ProjectCreate(_In):
    name: str = Name
    institution_id: int
    sovereign: bool = False


class ProjectRead(_Out):
    id: int
    name: str
    institution_id: int
    sovereign: bool
    created_at: datetime


class MemberAdd(_In):
    user_id: int
    role: ProjectRole = "member"


class MemberRead(BaseModel):
    user_id: int
    name: str
    role: str


class UserCreate(_In):
    name: str = Name
    role: UserRole = "user"


class UserRead(_Out):
    id: int
    name: str
    role: str
    created_at: datetime


class WhoAmI(BaseModel):
    id: int
    name: str
    role: str
    projects: dict[int, str]


class TokenCreate(_In):
    expires_at: AwareDatetime | None = None
    label: str = Field(default="", max_length=200)


class TokenCreated(BaseModel):
    """The raw ``token`` appears only in this response; the server keeps its SHA-256."""

    id: int
    user_id: int
    token: str
    expires_at: datetime | None
    created_at: datetime
