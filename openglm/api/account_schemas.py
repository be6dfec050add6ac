"""Wire models of the account and admin APIs. Amounts of money are decimal strings in CNY."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, Field


class AccountOut(BaseModel):
    id: str
    object: Literal["account"] = "account"
    name: str
    status: str
    balance: str
    created_at: datetime


class AccountCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    # CNY; omitted: the server's free grant for new accounts.
    grant: str | None = None


class AccountUpdate(BaseModel):
    status: Literal["active", "disabled"]


class UserCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    email: str | None = None


class UserOut(BaseModel):
    id: str
    object: Literal["user"] = "user"
    account_id: str
    name: str
    email: str | None = None


class KeyLimitsIn(BaseModel):
    """null or absent: the server default; 0: unlimited."""

    concurrency: int | None = Field(default=None, ge=0)
    rpm: int | None = Field(default=None, ge=0)
    daily_tokens: int | None = Field(default=None, ge=0)


class KeyCreate(BaseModel):
    name: str = Field(default="", max_length=200)
    scope: Literal["user", "admin"] = "user"
    user_id: str | None = None
    expires_at: AwareDatetime | None = None
    limits: KeyLimitsIn | None = None


class KeyUpdate(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    status: Literal["active", "disabled"] | None = None
    expires_at: AwareDatetime | None = None
    clear_expiry: bool = False
    limits: KeyLimitsIn | None = None


class KeyOut(BaseModel):
    id: str
    object: Literal["api_key"] = "api_key"
    account_id: str
    account_name: str | None = None
    user_id: str | None = None
    name: str
    scope: str
    status: str
    # Only in the answer to the request that created the key; never again.
    key: str | None = None
    secret_hint: str
    expires_at: datetime | None = None
    limits: KeyLimitsIn
    created_at: datetime
    last_used_at: datetime | None = None


class LedgerCreate(BaseModel):
    kind: Literal["topup", "grant", "refund", "adjustment"]
    amount: str = Field(description="CNY, e.g. '100' or '0.5'; negative only for adjustments")
    note: str = Field(default="", max_length=500)


class LedgerEntryOut(BaseModel):
    id: int
    object: Literal["ledger_entry"] = "ledger_entry"
    account_id: str
    kind: str
    amount: str
    usage_id: str | None = None
    note: str
    created_at: datetime


class UsageRowOut(BaseModel):
    group: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    images: int
    cost: str


class UsageReport(BaseModel):
    object: Literal["usage_report"] = "usage_report"
    by: str
    data: list[UsageRowOut]
    total_cost: str


T = TypeVar("T", bound=BaseModel)


class ListOf(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
