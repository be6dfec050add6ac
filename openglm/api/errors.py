"""Framework errors translated into the platform's error hierarchy."""

from __future__ import annotations

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import BodyTooLargeError, InvalidFieldError, InvalidRequestError, MissingFieldError, OpenGLMError


def _where(loc: tuple[object, ...]) -> str:
    # Pydantic names the branch of a union in the location ("prompt.list[str]"): the field's path is enough.
    parts = [str(p) for p in loc if p != "body" and "[" not in str(p)]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "body"


def validation_error(exc: RequestValidationError) -> OpenGLMError:
    errors = exc.errors()
    # A value of the right type that breaks a bound says more than a union's other branches refusing its type
    # (a list of 10^6 prompts: "at most 16 items", not "should be a valid string").
    errors = sorted(errors, key=lambda error: str(error.get("type", "")).endswith("_type"))
    first = errors[0] if errors else {"type": "", "loc": (), "msg": "invalid request"}
    kind, where = first.get("type", ""), _where(tuple(first.get("loc", ())))
    if kind == "json_invalid":
        return InvalidRequestError("request body is not valid JSON")
    if kind == "missing":
        return MissingFieldError(f"{where}: field is required")
    if kind in {"model_attributes_type", "dict_type"} and where == "body":
        return InvalidRequestError("request body must be a JSON object")
    return InvalidFieldError(f"{where}: {first.get('msg', 'invalid value')}")


def http_error(exc: StarletteHTTPException) -> OpenGLMError:
    if exc.status_code == 404:
        return OpenGLMError(f"API not found: {exc.detail}", code="1222", status=404)
    if exc.status_code == 413:  # a body over its route's cap (api/request_guard.py)
        return BodyTooLargeError(str(exc.detail))
    if exc.status_code == 405:
        return OpenGLMError("method not supported on this path", code="1212", status=405)
    return OpenGLMError(str(exc.detail), code=str(exc.status_code), status=exc.status_code)
