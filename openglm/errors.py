"""One error hierarchy, translated to the wire at the API boundary.

    OpenGLMError                      code  status
    ├── InvalidRequestError           1210  400   malformed body, bad parameter values
    │   ├── MissingFieldError         1213  400
    │   ├── InvalidFieldError         1214  400   wrong type / value of a named field
    │   │   ├── DocumentError         1214  400   an upload that cannot be read as a document (.problem says why)
    │   │   └── AdapterUnsupportedError 1214 400  a LoRA adapter asked of an engine that cannot serve one
    │   ├── ConflictError             1215  400   the resource's state forbids it now (delete a running job)
    │   ├── StorageQuotaError         1210  400   the account's files would exceed its storage quota
    │   ├── BodyTooLargeError         1210  413   the request body is larger than its route takes
    │   ├── UnsupportedError          1212  400   the model or engine cannot do what was asked (count tokens)
    │   ├── PromptTooLongError        1261  400
    │   └── SensitiveContentError     1301  400   content safety refused the input (the hit is recorded)
    ├── ModelNotFoundError            1211  400
    ├── NotFoundError                 1214  404   a key or other resource named in the path
    │   └── AccountNotFoundError      1111  404   账户不存在
    ├── AuthenticationError           1000  401   the key or token is not accepted
    │   ├── MissingCredentialsError   1001  401   no Authorization header
    │   ├── InvalidTokenError         1002  401   malformed, or names no known key
    │   ├── ExpiredTokenError         1003  401   JWT past its exp, or the key past its expiry
    │   └── TokenVerificationError    1004  401   wrong secret / bad signature / key disabled
    ├── PermissionDeniedError         1220  403   a user key on the admin API
    ├── AccountInactiveError          1110  403   the account is disabled
    ├── RateLimitError                1305  429   too many requests (also an upstream engine's 429)
    │   ├── ConcurrencyLimitError     1302  429   retryable
    │   ├── FrequencyLimitError       1303  429   retryable after Retry-After
    │   ├── DailyQuotaError           1304  429   not retryable today
    │   └── InsufficientBalanceError  1113  429   not retryable: top up first
    ├── EngineError                   1260  500   the engine failed while generating
    │   └── AdapterLoadError          1260  500   a LoRA adapter file is missing or llama.cpp cannot load it
    ├── ServiceUnavailableError       1234  503   a backing service (limits store) is unreachable; retryable
    └── InternalError                  500  500   also the server's own misconfiguration (SealingError)

Codes and statuses follow the Zhipu API v4 (see docs/architecture.md); the
body is always ``{"error": {"code": "<str>", "message": "..."}}``.
"""

from __future__ import annotations

import json
from typing import Any, Literal


class OpenGLMError(Exception):
    code: str = "500"
    status: int = 500

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    # Zhipu's SDK (and openai's) retry a 429 unless told not to.
    retryable: bool = False
    retry_after: float | None = None

    def headers(self) -> dict[str, str]:
        if self.status != 429:
            return {}
        headers = {"x-should-retry": "true" if self.retryable else "false"}
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, round(self.retry_after)))
        return headers

    def to_body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}

    def model_body_json(self) -> str:
        return json.dumps(self.to_body(), ensure_ascii=False)


class InvalidRequestError(OpenGLMError):
    code = "1210"
    status = 400


class MissingFieldError(InvalidRequestError):
    code = "1213"


class InvalidFieldError(InvalidRequestError):
    code = "1214"


# empty: no bytes or no text; unsupported: a type no parser reads; undecodable: not text in any known encoding;
# corrupt: the format's library could not read it; encrypted: a password is needed; too_large: too much text;
# too_complex: reading it would take more time or memory than the server gives one document (a compression bomb).
DocumentProblem = Literal["empty", "unsupported", "undecodable", "corrupt", "encrypted", "too_large", "too_complex"]


class DocumentError(InvalidFieldError):
    """A knowledge document that cannot be parsed; ``problem`` says why, for machines (see ``DocumentProblem``).

    The message is written for the uploader ("the PDF is encrypted"), so the API can pass it on as it is.
    """

    def __init__(self, problem: DocumentProblem, message: str):
        super().__init__(message)
        self.problem = problem


class AdapterUnsupportedError(InvalidFieldError):
    """The request names a LoRA adapter (a fine-tuned model) and its base's engine cannot serve adapters."""


class ConflictError(InvalidRequestError):
    """The request conflicts with the resource's current state (deleting a fine-tuning job that still runs)."""

    code = "1215"


class StorageQuotaError(InvalidRequestError):
    """Keeping this file would take the account past its storage quota. Zhipu has no code for it; like OpenAI's
    files API this is a refused request (400, the generic 1210), not a rate limit: retrying does not help,
    deleting files does."""


class BodyTooLargeError(InvalidRequestError):
    """The request body is larger than its route takes (refused while it is read, or from Content-Length)."""

    status = 413


class UnsupportedError(InvalidRequestError):
    """Zhipu's 1212 (method not supported): this model or engine cannot do what the request asks."""

    code = "1212"


class PromptTooLongError(InvalidRequestError):
    code = "1261"


class SensitiveContentError(InvalidRequestError):
    """A moderation checker hit the request's input: nothing ran but the check (``openglm.safety``)."""

    code = "1301"


class ModelNotFoundError(OpenGLMError):
    code = "1211"
    status = 400


class NotFoundError(OpenGLMError):
    code = "1214"
    status = 404


class AccountNotFoundError(NotFoundError):
    code = "1111"


class AuthenticationError(OpenGLMError):
    code = "1000"
    status = 401


class MissingCredentialsError(AuthenticationError):
    code = "1001"


class InvalidTokenError(AuthenticationError):
    code = "1002"


class ExpiredTokenError(AuthenticationError):
    code = "1003"


class TokenVerificationError(AuthenticationError):
    code = "1004"


class PermissionDeniedError(OpenGLMError):
    code = "1220"
    status = 403


class AccountInactiveError(OpenGLMError):
    code = "1110"
    status = 403


class RateLimitError(OpenGLMError):
    code = "1305"
    status = 429
    retryable = True


class ConcurrencyLimitError(RateLimitError):
    code = "1302"


class FrequencyLimitError(RateLimitError):
    code = "1303"


class DailyQuotaError(RateLimitError):
    code = "1304"
    retryable = False


class InsufficientBalanceError(RateLimitError):
    code = "1113"
    retryable = False


class EngineError(OpenGLMError):
    code = "1260"
    status = 500


class AdapterLoadError(EngineError):
    """A LoRA adapter's file is missing, unreadable, or not an adapter for this base model. The platform's own
    state is wrong, not the caller's request: only that request fails, the engine keeps serving."""


class ServiceUnavailableError(OpenGLMError):
    code = "1234"
    status = 503


class InternalError(OpenGLMError):
    code = "500"
    status = 500
