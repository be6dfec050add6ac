"""Store objects → wire models of the account and admin APIs."""

from __future__ import annotations

from datetime import datetime

from ..accounts.ledger import Entry
from ..accounts.limits import KeyLimits
from ..accounts.money import format_yuan, to_nano
from ..accounts.prices import ModelPrice
from ..accounts.store import AccountView, KeyView
from ..accounts.usage import UsageRow
from ..errors import InvalidFieldError
from ..files.quota import StorageUsage
from ..protocol.accounts import (
    AccountOut,
    ConsoleKeyOut,
    ConsoleNewKey,
    KeyLimitsIn,
    KeyOut,
    LedgerEntryOut,
    PriceOut,
    StorageOut,
    UsageReport,
    UsageRowOut,
    UserOut,
)
from ..store.models import ApiKey, User


def parse_amount(text: str, field: str) -> int:
    try:
        return to_nano(text)
    except ValueError as exc:
        raise InvalidFieldError(f"{field}: {exc}") from None


def account_out(view: AccountView) -> AccountOut:
    a = view.account
    return AccountOut(id=a.id, name=a.name, status=a.status, balance=format_yuan(view.balance), created_at=a.created_at)


def storage_out(account_id: str, usage: StorageUsage) -> StorageOut:
    return StorageOut(
        account_id=account_id,
        used_bytes=usage.used_bytes,
        quota_bytes=usage.quota_bytes,
        account_quota=usage.account_quota,
    )


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        account_id=user.account_id,
        name=user.name,
        email=user.email,
        can_sign_in=user.password_hash is not None,
    )


def limits_in(limits: KeyLimitsIn | None) -> KeyLimits | None:
    if limits is None:
        return None
    return KeyLimits(concurrency=limits.concurrency, rpm=limits.rpm, daily_tokens=limits.daily_tokens)


def key_out(
    key: ApiKey, *, account_name: str | None = None, full_key: str | None = None, view: KeyView | None = None
) -> KeyOut:
    return KeyOut(
        id=key.id,
        account_id=key.account_id,
        account_name=account_name,
        user_id=key.user_id,
        name=key.name,
        scope=key.scope,
        status=key.status,
        key=full_key,
        secret_hint=key.secret_hint,
        expires_at=key.expires_at,
        limits=KeyLimitsIn(concurrency=key.max_concurrency, rpm=key.rpm, daily_tokens=key.daily_tokens),
        safety=key.safety,
        created_at=key.created_at,
        last_used_at=view.last_used_at if view else None,
    )


def key_view_out(view: KeyView) -> KeyOut:
    return key_out(view.key, account_name=view.account_name, view=view)


def entry_out(entry: Entry) -> LedgerEntryOut:
    return LedgerEntryOut(
        id=entry.id,
        account_id=entry.account_id,
        kind=entry.kind,
        amount=format_yuan(entry.amount),
        usage_id=entry.usage_id,
        note=entry.note,
        created_at=entry.created_at,
    )


def usage_report(by: str, rows: list[UsageRow]) -> UsageReport:
    return UsageReport(
        by=by,
        data=[
            UsageRowOut(
                group=r.group,
                requests=r.requests,
                prompt_tokens=r.prompt_tokens,
                completion_tokens=r.completion_tokens,
                total_tokens=r.prompt_tokens + r.completion_tokens,
                images=r.images,
                cost=format_yuan(r.cost),
            )
            for r in rows
        ],
        total_cost=format_yuan(sum(r.cost for r in rows)),
    )


def console_key_out(key: ApiKey, last_used_at: datetime | None = None) -> ConsoleKeyOut:
    return ConsoleKeyOut(
        id=key.id,
        name=key.name,
        disabled=key.status != "active",
        secret_hint=key.secret_hint,
        created_at=key.created_at,
        expires_at=key.expires_at,
        last_used_at=last_used_at,
    )


def console_new_key(key: ApiKey, full_key: str) -> ConsoleNewKey:
    return ConsoleNewKey(**console_key_out(key).model_dump(), key=full_key)


def price_out(price: ModelPrice) -> PriceOut:
    return PriceOut(
        model=price.model,
        kind=price.kind,
        input_per_1k=format_yuan(price.prices.input_per_1k),
        output_per_1k=format_yuan(price.prices.output_per_1k),
        per_image=format_yuan(price.prices.per_image),
    )
