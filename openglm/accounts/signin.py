"""Web sign-in: an email and password in, a session key out (an ordinary ``id.secret`` key of the user's account,
named ``web sign-in``, that expires), so the web app calls the API exactly as any client does.

Failed attempts are counted per email; past ``MAX_FAILURES`` within ``WINDOW`` seconds, that email is refused
(429, 1303, with Retry-After) until the oldest failure leaves the window. The count is per process: replicas each
keep their own.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..errors import AccountInactiveError, FrequencyLimitError, TokenVerificationError
from ..store.models import ApiKey, User
from .passwords import verify_password
from .store import AccountStore

SESSION_KEY_NAME = "web sign-in"
MAX_FAILURES = 5
WINDOW = 60.0
MAX_TRACKED = 100_000  # emails remembered at most; the oldest are forgotten first


class LoginThrottle:
    """Failed sign-ins per email within a sliding window."""

    def __init__(
        self, max_failures: int = MAX_FAILURES, window: float = WINDOW, clock: Callable[[], float] = time.monotonic
    ):
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def check(self, email: str) -> None:
        failures = self._recent(email)
        if len(failures) >= self.max_failures:
            wait = failures[0] + self.window - self._clock()
            error = FrequencyLimitError(
                f"too many failed sign-ins for this email; try again in {max(1, round(wait))} s"
            )
            error.retry_after = wait
            raise error

    def failed(self, email: str) -> None:
        self._recent(email).append(self._clock())
        if len(self._failures) > MAX_TRACKED:
            del self._failures[next(iter(self._failures))]

    def succeeded(self, email: str) -> None:
        self._failures.pop(_normal(email), None)

    def _recent(self, email: str) -> deque[float]:
        failures = self._failures.setdefault(_normal(email), deque())
        while failures and failures[0] <= self._clock() - self.window:
            failures.popleft()
        return failures


def _normal(email: str) -> str:
    return email.strip().lower()


@dataclass(frozen=True)
class Session:
    key: ApiKey
    full_key: str
    user: User


class SignIn:
    def __init__(self, store: AccountStore, *, session_hours: float, throttle: LoginThrottle | None = None):
        self.store = store
        self.session_hours = session_hours
        self.throttle = throttle or LoginThrottle()

    async def login(self, email: str, password: str) -> Session:
        """A new session key, or 401 (1004) for a wrong email or password alike, in the same time either way."""
        self.throttle.check(email)
        user = await self.store.user_for_sign_in(email)
        # scrypt holds the CPU for tens of milliseconds: not on the event loop.
        ok = await asyncio.to_thread(verify_password, password, None if user is None else user.password_hash)
        if not ok or user is None:
            self.throttle.failed(email)
            raise TokenVerificationError("wrong email or password / 邮箱或密码错误")
        self.throttle.succeeded(email)
        account = await self.store.account(user.account_id)
        if account.status != "active":
            raise AccountInactiveError("account is disabled / 账户已停用")
        expires = datetime.now(UTC) + timedelta(hours=self.session_hours)
        key, full = await self.store.create_key(
            user.account_id, name=SESSION_KEY_NAME, user_id=user.id, expires_at=expires, web_session=True
        )
        return Session(key, full, user)

    async def logout(self, account_id: str, key_id: str | None) -> None:
        """Delete the session key used; any other key (or none, with authentication off) is left as it is."""
        if key_id is None:
            return
        key = await self.store.account_key(account_id, key_id)
        if key.web_session:
            await self.store.delete_key(key_id)
