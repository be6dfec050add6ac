"""What every surface's wire models share: the request base, the caller's request id and the bounds on integers
that reach SQL. No logic here."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints


class WireModel(BaseModel):
    """A request model: unknown fields are ignored, because both official SDKs send fields the other does not
    know."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


# Integers that reach SQL are bounded here, on the wire: a ``page`` of 10^30 became an offset that SQLite cannot
# hold (OverflowError, a 500). Pages beyond the last are empty, so the bound only has to be far above any real one.
MAX_PAGE = 100_000
MAX_SQL_INT = 2**63 - 1  # SQLite's and PostgreSQL's BIGINT


def _number_as_text(value: Any) -> Any:
    # SDKs send a number now and then; it is stored as its text, so it is bounded as text (10**200 is 201 chars).
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


# A caller's request id, stored with the usage record (String(128)): text of at most 128 characters without NUL
# (PostgreSQL text cannot hold one), or a number whose text is that short. Every request schema uses this one.
RequestId = Annotated[str, BeforeValidator(_number_as_text), StringConstraints(max_length=128, pattern=r"^[^\x00]*$")]


class SensitiveWordCheck(WireModel):
    """Zhipu's per-request content check switch: ``{"type": "ALL", "status": "ENABLE" | "DISABLE"}``. DISABLE is
    honoured only for keys the operator lets turn the checks off (as Zhipu grants it per account)."""

    type: str | None = "ALL"
    status: Annotated[str, StringConstraints(to_upper=True)] | None = "ENABLE"
