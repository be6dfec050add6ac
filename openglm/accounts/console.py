"""An account's own console (``/account/keys``): the rules for the keys a caller makes and changes for itself.

- A key made through the console never outlives or outranks an ordinary calling key: it gets the caller's limits
  (concurrency, requests per minute, daily tokens: the stored values, so an unset one stays the server default)
  and the caller's expiry, and it records the caller as its parent. Admission then checks the parent's limits —
  and those of every key up the chain — against what the whole family used (``limits.py``), so a key cannot
  escape its spent daily tokens, its rate or its concurrency by minting a child; and a child stops working when
  any key up its chain is disabled, deleted or expires (``auth.py``). Chains are at most
  ``MAX_KEY_GENERATIONS`` keys long. The budget is the account's balance, which every key of the account draws
  on through the same reservations, children included.
- A web sign-in session key is the exception, because making lasting keys is what the console is for: the
  session stands for the user's password, not for a key, so its keys are roots — the server's defaults (no limits
  of their own), no expiry, no parent.
- The console may disable and delete its keys, but not enable a disabled one: it cannot tell a key the account
  disabled from one an operator disabled (admin API, CLI), and an operator's decision must hold. A new key is the
  way back.
- With authentication off there is no caller to check and anyone who reaches the server is the local account, so
  the console makes no keys: keys minted on an open server would stay valid after authentication is turned on.
"""

from __future__ import annotations

from ..errors import PermissionDeniedError
from ..store.models import ApiKey
from .auth import Principal
from .limits import KeyLimits
from .store import MAX_KEY_GENERATIONS, AccountStore


async def create_key(store: AccountStore, principal: Principal, name: str) -> tuple[ApiKey, str]:
    if principal.key_id is None:
        raise PermissionDeniedError(
            "authentication is off on this server: the console makes no API keys (they would stay valid once "
            "authentication is on); an operator makes them with `openglm keys create` / 认证未开启，控制台不能创建密钥"
        )
    caller = await store.account_key(principal.account_id, principal.key_id) if principal.scope == "user" else None
    if caller is None:  # an admin key: the account's console is not its business, but it outranks any user key
        caller = await store.key(principal.key_id)
    if caller.web_session:
        return await store.create_key(principal.account_id, name=name, user_id=principal.user_id)
    if len(principal.lineage) + 2 > MAX_KEY_GENERATIONS:
        raise PermissionDeniedError(
            f"keys made from keys go {MAX_KEY_GENERATIONS} generations deep at most: make this key from the web "
            "console (a sign-in), or ask an operator / 密钥层级过深"
        )
    limits = KeyLimits(caller.max_concurrency, caller.rpm, caller.daily_tokens)
    return await store.create_key(
        principal.account_id,
        name=name,
        user_id=principal.user_id,
        expires_at=caller.expires_at,
        limits=limits,
        parent_id=caller.id,
    )


async def update_key(
    store: AccountStore, principal: Principal, key_id: str, *, name: str | None, disabled: bool | None
) -> ApiKey:
    key = await store.account_key(principal.account_id, key_id)
    if disabled is False and key.status == "disabled":
        raise PermissionDeniedError(
            "a disabled key cannot be enabled from the console: ask an operator to enable it, or create a new key "
            "/ 已停用的密钥不能在控制台启用：请联系管理员，或创建新密钥"
        )
    status = None if disabled is None else ("disabled" if disabled else "active")
    return await store.update_key(key_id, name=name, status=status)


async def delete_key(store: AccountStore, principal: Principal, key_id: str) -> ApiKey:
    await store.account_key(principal.account_id, key_id)
    return await store.delete_key(key_id)
