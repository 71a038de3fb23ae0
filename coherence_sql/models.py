"""The Python contract: the Coherence Network API's pydantic models and enums.

Field names, types and defaults follow the API (shared/reference/client-contract.md §1); where the
plan's schema holds more information (URLs, GitHub username, metadata, an asset name, task tier,
claims) the model carries it as an optional field, so every column round-trips.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, EmailStr, Field, model_validator


def utcnow_naive() -> datetime:
    """Naive UTC, as the API's graph models use (datetime.utcnow without the deprecation)."""
    return datetime.now(UTC).replace(tzinfo=None)


def utcnow() -> datetime:
    """Aware UTC, as the API's agent tasks use."""
    return datetime.now(UTC)


# -- projects ----------------------------------------------------------------------------------


class Project(BaseModel):
    name: str
    ecosystem: str
    version: str
    description: str
    dependency_count: int = 0  # out-degree, kept by the store; a caller's value is ignored
    homepage_url: str | None = None
    repository_url: str | None = None


class ProjectSummary(BaseModel):
    name: str
    ecosystem: str
    description: str


# -- contributors, assets, contributions -------------------------------------------------------


class ContributorType(str, Enum):
    HUMAN = "HUMAN"
    SYSTEM = "SYSTEM"


class ContributorBase(BaseModel):
    type: ContributorType
    name: str
    email: EmailStr
    wallet_address: str | None = None
    hourly_rate: Decimal | None = None


class ContributorCreate(ContributorBase):
    pass


class Contributor(ContributorBase):
    model_config = ConfigDict(from_attributes=True)

    id: UUID = Field(default_factory=uuid4)
    created_at: datetime = Field(default_factory=utcnow_naive)
    github_username: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class AssetType(str, Enum):
    CODE = "CODE"
    MODEL = "MODEL"
    CONTENT = "CONTENT"
    DATA = "DATA"


class AssetBase(BaseModel):
    type: AssetType
    description: str


class AssetCreate(AssetBase):
    pass


ASSET_NAME_MAX = 255


class Asset(AssetBase):
    model_config = ConfigDict(from_attributes=True)

    id: UUID = Field(default_factory=uuid4)
    total_cost: Decimal = Decimal("0.00")
    created_at: datetime = Field(default_factory=utcnow_naive)
    # The plan's NOT NULL assets.name; the API has none, so it defaults to the description's start.
    name: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _default_name(self) -> Asset:
        if self.name is None:
            self.name = self.description[:ASSET_NAME_MAX]
        return self


class ContributionBase(BaseModel):
    contributor_id: UUID
    asset_id: UUID
    cost_amount: Decimal
    metadata: dict[str, Any] = Field(default_factory=dict)


class ContributionCreate(ContributionBase):
    pass


class Contribution(ContributionBase):
    model_config = ConfigDict(from_attributes=True)

    id: UUID = Field(default_factory=uuid4)
    coherence_score: float = Field(ge=0.0, le=1.0)
    timestamp: datetime = Field(default_factory=utcnow_naive)


class Payout(BaseModel):
    contributor_id: UUID
    amount: Decimal


class DistributionCreate(BaseModel):
    asset_id: UUID
    value_amount: Decimal


class Distribution(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID = Field(default_factory=uuid4)
    asset_id: UUID
    value_amount: Decimal
    payouts: list[Payout]
    created_at: datetime = Field(default_factory=utcnow_naive)


# -- GitHub ------------------------------------------------------------------------------------


class GitHubContributorCreate(BaseModel):
    login: str
    name: str | None = None
    avatar_url: str | None = None
    contributions_count: int = 0


class GitHubContributor(BaseModel):
    id: str
    source: str = "github"
    login: str
    name: str | None = None
    avatar_url: str | None = None
    contributions_count: int = 0
    created_at: datetime = Field(default_factory=utcnow_naive)
    updated_at: datetime | None = None


class GitHubOrganizationCreate(BaseModel):
    login: str
    type: str
    name: str | None = None
    avatar_url: str | None = None


class GitHubOrganization(BaseModel):
    id: str
    login: str
    type: str
    name: str | None = None
    avatar_url: str | None = None
    created_at: datetime = Field(default_factory=utcnow_naive)
    updated_at: datetime | None = None


# -- agent tasks -------------------------------------------------------------------------------


class TaskType(str, Enum):
    SPEC = "spec"
    TEST = "test"
    IMPL = "impl"
    REVIEW = "review"
    HEAL = "heal"


class TaskStatus(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    NEEDS_DECISION = "needs_decision"


DIRECTION_MAX = 5000


class AgentTaskRecord(BaseModel):
    """A stored agent task: the API's stored dict (client-contract §1.9) plus the claim fields."""

    id: str
    direction: str
    task_type: TaskType
    status: TaskStatus = TaskStatus.PENDING
    model: str
    command: str
    tier: str | None = None
    context: dict[str, Any] | None = None
    output: str | None = None
    progress_pct: int | None = None
    current_step: str | None = None
    decision_prompt: str | None = None
    decision: str | None = None
    started_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime | None = None
    claimed_by: str | None = None
    claimed_at: datetime | None = None

    def as_api_dict(self) -> dict[str, Any]:
        """The dict the API's agent_service returns, with enum members as it has them."""
        return {
            "id": self.id,
            "direction": self.direction,
            "task_type": self.task_type,
            "status": self.status,
            "model": self.model,
            "command": self.command,
            "started_at": self.started_at,
            "output": self.output,
            "context": self.context,
            "progress_pct": self.progress_pct,
            "current_step": self.current_step,
            "decision_prompt": self.decision_prompt,
            "decision": self.decision,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "tier": self.tier,
            "claimed_by": self.claimed_by,
            "claimed_at": self.claimed_at,
        }


class AgentTaskList(BaseModel):
    tasks: list[AgentTaskRecord]
    total: int
