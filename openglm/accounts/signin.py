"""Web sign-in: an email and password in, a session key out (an ordinary ``id.secret`` key of the user's account,
named ``web sign-in``, that expires), so the web app calls the API exactly as any client does.

Attempts are counted per email: each one is counted as a failure **before** its password is checked (a
reservation), and a success forgives the email's count. So parallel attempts cannot slip past the limit while
their passwords are being checked: past ``MAX_FAILURES`` within ``WINDOW`` seconds, that email is refused (429,
1303, with Retry-After) until the oldest attempt leaves the window. At most ``MAX_TRACKED`` emails are remembered;
the one whose last failure is oldest is forgotten first (not the oldest-inserted, which is the one under attack).
Checking a password is scrypt (16 MiB, tens of ms): at most ``MAX_VERIFYING`` run at once per process; an attempt
that finds no free slot within ``VERIFY_WAIT`` seconds is a 429 (1303, Retry-After) and its reservation is
returned. The counts are per process: replicas each keep their own.
"""

from __future__ import annotations

import asyncio
import contextlib
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
MAX_TRACKED = 100_000  # emails remembered at most; the least recently failed are forgotten first
MAX_VERIFYING = 4  # password checks (scrypt, 16 MiB each) running at once
VERIFY_WAIT = 2.0  # seconds an attempt waits for a free password check before a 429


class LoginThrottle:
    """Sign-in attempts per email within a sliding window, counted as failures until they succeed."""

    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
        max_tracked: int = MAX_TRACKED,
    ):
        self.max_failures = max_failures
        self.window = window
        self.max_tracked = max_tracked
        self._clock = clock
        # Ordered by last failure, oldest first: eviction takes the front.
        self._failures: dict[str, deque[float]] = {}

    def check(self, email: str) -> None:
        """429 if ``email`` has had too many failures (or reservations) within the window."""
        failures = self._failures.get(_normal(email))
        if failures is None:
            return
        self._prune(failures)
        if len(failures) >= self.max_failures:
            wait = failures[0] + self.window - self._clock()
            error = FrequencyLimitError(
                f"too many failed sign-ins for this email; try again in {max(1, round(wait))} s"
            )
            error.retry_after = wait
            raise error

    def reserve(self, email: str) -> float:
        """Check, then count this attempt as a failure up front (so that parallel attempts see it); returns the
        stamp to give back with ``release`` if the attempt never got its password checked."""
        self.check(email)
        return self.failed(email)

    def failed(self, email: str) -> float:
        key = _normal(email)
        failures = self._failures.pop(key, None) or deque()
        self._prune(failures)
        stamp = self._clock()
        failures.append(stamp)
        self._failures[key] = failures  # to the back: the most recently failed
        while len(self._failures) > self.max_tracked:
            del self._failures[next(iter(self._failures))]
        return stamp

    def release(self, email: str, stamp: float) -> None:
        """Return a reservation whose password was never checked."""
        failures = self._failures.get(_normal(email))
        if failures is not None:
            with contextlib.suppress(ValueError):
                failures.remove(stamp)

    def succeeded(self, email: str) -> None:
        self._failures.pop(_normal(email), None)

    def _prune(self, failures: deque[float]) -> None:
        while failures and failures[0] <= self._clock() - self.window:
            failures.popleft()


def _normal(email: str) -> str:
    return email.strip().lower()


@dataclass(frozen=True)
class Session:
    key: ApiKey
    full_key: str
    user: User


class SignIn:
    def __init__(
        self,
        store: AccountStore,
        *,
        session_hours: float,
        throttle: LoginThrottle | None = None,
        max_verifying: int = MAX_VERIFYING,
        verify_wait: float = VERIFY_WAIT,
    ):
        self.store = store
        self.session_hours = session_hours
        self.throttle = throttle or LoginThrottle()
        self.verify_wait = verify_wait
        self._verifying = asyncio.Semaphore(max_verifying)

    async def login(self, email: str, password: str) -> Session:
        """A new session key, or 401 (1004) for a wrong email or password alike, in the same time either way."""
        stamp = self.throttle.reserve(email)  # counted as a failure until it succeeds
        try:
            await asyncio.wait_for(self._verifying.acquire(), self.verify_wait)
        except TimeoutError:
            self.throttle.release(email, stamp)
            error = FrequencyLimitError("too many sign-ins in progress; try again in a moment")
            error.retry_after = 1.0
            raise error from None
        handed_over = False
        try:
            user = await self.store.user_for_sign_in(email)
            # scrypt holds the CPU for tens of milliseconds: not on the event loop. The slot is given back when
            # the check ends, also when the client has left meanwhile (the thread cannot be stopped).
            check = asyncio.ensure_future(
                asyncio.to_thread(verify_password, password, None if user is None else user.password_hash)
            )
            check.add_done_callback(lambda _: self._verifying.release())
            handed_over = True
            ok = await asyncio.shield(check)
        finally:
            if not handed_over:
                self._verifying.release()
        if not ok or user is None:
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
