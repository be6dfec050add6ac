"""The accounts layer as the server uses it: database, key store, authenticator, limiter and meter, opened
together from the settings and closed together."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..config import Settings
from ..errors import PermissionDeniedError
from ..store.db import Database, open_database
from ..store.private import private_directory
from .auth import Authenticator, Principal
from .limits import KeyLimits, Limiter, create_limiter
from .metering import Meter
from .money import to_nano
from .sealing import SecretBox, load_master_key
from .signin import SignIn
from .spool import UsageSpool, spool_path
from .store import LOCAL_ACCOUNT, AccountStore

log = logging.getLogger(__name__)


def default_limits(settings: Settings) -> KeyLimits:
    """Limits for keys that set none of their own; 0 in the settings means unlimited."""
    return KeyLimits(
        concurrency=settings.key_concurrency or None,
        rpm=settings.key_rpm or None,
        daily_tokens=settings.key_daily_tokens or None,
    )


@dataclass
class Platform:
    db: Database
    store: AccountStore
    authenticator: Authenticator
    limiter: Limiter
    meter: Meter
    # The one principal every request acts as when authentication is off; None when it is on.
    local: Principal | None
    signin: SignIn

    @classmethod
    async def open(cls, settings: Settings) -> Platform:
        auth_on = settings.auth_enabled()  # raises for auth=off on a public bind, before anything is opened
        private_directory(settings.data_dir)  # the database, blobs and workspaces: the server's user's alone
        db = await open_database(settings.resolved_database_url())
        try:
            box = SecretBox(load_master_key(settings.secret_key, settings.secret_key_file, settings.data_dir))
            store = AccountStore(db, box, free_grant=to_nano(settings.free_grant))
            await store.check_master_key()
            authenticator = Authenticator(
                store.key_for_auth, defaults=default_limits(settings), leeway=settings.jwt_leeway
            )
            local = None
            if not auth_on:
                account = await store.ensure_account(LOCAL_ACCOUNT)
                local = Principal(account_id=account.id, key_id=None)
        except BaseException:
            await db.close()
            raise
        limiter = create_limiter(settings.redis_url or None)
        signin = SignIn(store, session_hours=settings.web_session_hours)
        spool = UsageSpool(spool_path(settings.data_dir))
        meter = Meter(db, limiter, settings.creator_share, spool=spool, enforce_balances=auth_on)
        platform = cls(db, store, authenticator, limiter, meter, local, signin)
        platform._announce(settings)
        await meter.replay_spool()  # calls an earlier run settled but could not record
        return platform

    def _announce(self, settings: Settings) -> None:
        where = "PostgreSQL" if self.db.dialect == "postgresql" else f"SQLite ({settings.resolved_database_url()})"
        limits = "Redis" if settings.redis_url else "in-process"
        log.info("store: %s; per-key limits: %s", where, limits)
        if self.local is not None:
            log.warning(
                "authentication is OFF: bound to loopback %s, every request acts as the local account %r. "
                "Set OPENGLM_AUTH=on to require API keys.",
                settings.host,
                LOCAL_ACCOUNT,
            )
        else:
            log.info("authentication is ON: every request needs an API key (openglm keys create ...)")

    async def caller(self, authorization: str | None) -> Principal:
        if self.local is not None:
            return self.local
        return await self.authenticator.authenticate(authorization)

    async def admin(self, authorization: str | None) -> Principal:
        """The admin API always needs an admin key, whether or not authentication is on for the model API."""
        principal = await self.authenticator.authenticate(authorization)
        if not principal.is_admin:
            raise PermissionDeniedError("this API needs an admin key; user keys cannot reach it")
        return principal

    async def close(self) -> None:
        await self.meter.drain()
        await self.limiter.close()
        await self.db.close()
