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


class StorageOut(BaseModel):
    """The bytes an account keeps in files (uploads, knowledge documents, code outputs, pictures) and its quota."""

    object: Literal["storage"] = "storage"
    account_id: str
    used_bytes: int
    quota_bytes: int | None  # None: unlimited
    account_quota: bool  # the operator set this account's own quota (else the server's default applies)


class StorageQuotaUpdate(BaseModel):
    # MB the account may keep: -1 unlimited, 0 nothing (as OPENGLM_STORAGE_QUOTA_MB); null: back to the server's
    # default.
    quota_mb: int | None = Field(ge=-1, le=1 << 40)


class AccountCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    # CNY; omitted: the server's free grant for new accounts.
    grant: str | None = None


class AccountUpdate(BaseModel):
    status: Literal["active", "disabled"]


class UserCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    # Lets the user sign in to the web app with the email (8 to 1024 characters; needs an email).
    password: str | None = Field(default=None, repr=False)


class UserUpdate(BaseModel):
    password: str | None = Field(default=None, repr=False)
    clear_password: bool = False  # the user can no longer sign in with a password


class UserOut(BaseModel):
    id: str
    object: Literal["user"] = "user"
    account_id: str
    name: str
    email: str | None = None
    can_sign_in: bool = False  # has a password for the web app


KeySafety = Literal["on", "optional", "off"]


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
    # Content safety for the key's calls: on (always checked), optional (a request's sensitive_word_check may
    # turn the checks off), off (never checked: an operator's evaluation or red-team key).
    safety: KeySafety = "on"


class KeyUpdate(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    status: Literal["active", "disabled"] | None = None
    expires_at: AwareDatetime | None = None
    clear_expiry: bool = False
    limits: KeyLimitsIn | None = None
    safety: KeySafety | None = None


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
    safety: str = "on"
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


class ConsoleKeyCreate(BaseModel):
    name: str = Field(default="", max_length=200)


class ConsoleKeyUpdate(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    disabled: bool | None = None


class ConsoleKeyOut(BaseModel):
    """A key as its own account's console shows it: never its secret (only its last four characters)."""

    id: str
    object: Literal["api_key"] = "api_key"
    name: str
    disabled: bool
    secret_hint: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None


class ConsoleNewKey(ConsoleKeyOut):
    key: str  # id.secret: in this answer only, never again


class PriceOut(BaseModel):
    model: str
    kind: str  # chat | image | embedding
    input_per_1k: str  # CNY per 1K input tokens
    output_per_1k: str
    per_image: str
    currency: Literal["CNY"] = "CNY"


class LoginIn(BaseModel):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024, repr=False)


class SessionUser(BaseModel):
    id: str
    email: str | None = None
    name: str


class LoginOut(BaseModel):
    key: str  # id.secret: the session's key, sent as any API key is (Authorization: Bearer ...)
    key_id: str
    expires_at: datetime
    account_id: str
    user: SessionUser


class SessionOut(BaseModel):
    auth: Literal["on", "off"]
    account_id: str
    key_id: str | None = None
    user: SessionUser | None = None
