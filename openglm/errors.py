"""One error hierarchy, translated to the wire at the API boundary.

    OpenGLMError                      code  status
    ├── InvalidRequestError           1210  400   malformed body, bad parameter values
    │   ├── MissingFieldError         1213  400
    │   ├── InvalidFieldError         1214  400   wrong type / value of a named field
    │   └── PromptTooLongError        1261  400
    ├── ModelNotFoundError            1211  400
    ├── AuthenticationError           1000  401
    ├── RateLimitError                1302  429
    ├── EngineError                   1260  500   the engine failed while generating
    └── InternalError                  500  500

Codes and statuses follow the Zhipu API v4 (see docs/architecture.md); the
body is always ``{"error": {"code": "<str>", "message": "..."}}``.
"""

from __future__ import annotations

import json
from typing import Any


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


class PromptTooLongError(InvalidRequestError):
    code = "1261"


class ModelNotFoundError(OpenGLMError):
    code = "1211"
    status = 400


class AuthenticationError(OpenGLMError):
    code = "1000"
    status = 401


class RateLimitError(OpenGLMError):
    code = "1302"
    status = 429


class EngineError(OpenGLMError):
    code = "1260"
    status = 500


class InternalError(OpenGLMError):
    code = "500"
    status = 500
