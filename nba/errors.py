"""The one error hierarchy of nba; HTTP status and problem `code` live here and nowhere else.

NbaError                      500 internal_error (never raised on purpose)
+-- InvalidRequest            400 invalid_request  (field-level `errors`)
|   +-- InvalidJson           400 invalid_json
+-- Unauthorized              401 unauthorized (no key, an unknown, revoked or expired one; with
|                                 `WWW-Authenticate`)
+-- Forbidden                 403 forbidden (the key's role or channels do not allow it)
+-- NotFound                  404 not_found / customer_not_found / ...
+-- MethodNotAllowed          405 method_not_allowed (with `Allow`)
+-- RequestTimeout            408 body_timeout (the client stopped sending its body)
+-- Conflict                  409 conflict / no_rules_directory (the state of the server forbids it) /
|   |                             request_id_reused (a decide request_id already named another request)
|   +-- StoredDataUnreadable  409 stored_data_unreadable (a stored record cannot be parsed: PUT
|                                 replaces it, DELETE erases it; decide answers degraded meanwhile)
+-- PayloadTooLarge           413 payload_too_large
+-- UnsupportedMediaType      415 unsupported_media_type
+-- RulesRejected             422 rules_invalid (a reload found problems; the running set stays)
+-- TooManyRequests           429 rate_limited (the key's request rate; with `Retry-After`)
+-- Unavailable               503 unavailable (Redis down, rules not loaded; with `Retry-After`)
RulesInvalid                  not an HTTP error: stops start-up / refuses a reload
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


class NbaError(Exception):
    status = 500
    code = "internal_error"
    title = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.errors: list[FieldError] = errors or []
        self.headers: dict[str, str] = headers or {}


class InvalidRequest(NbaError):
    status = 400
    code = "invalid_request"
    title = "Invalid request"


class InvalidJson(InvalidRequest):
    code = "invalid_json"
    title = "Body is not valid JSON"


class Unauthorized(NbaError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str, *, code: str | None = None):
        # RFC 6750: the scheme, and for a key that was sent and refused, why
        challenge = 'Bearer realm="nba"' + (', error="invalid_token"' if code == "invalid_key" else "")
        super().__init__(detail, code=code, headers={"WWW-Authenticate": challenge})


class Forbidden(NbaError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(NbaError):
    status = 404
    code = "not_found"
    title = "Not found"


class MethodNotAllowed(NbaError):
    status = 405
    code = "method_not_allowed"
    title = "Method not allowed"


class RequestTimeout(NbaError):
    status = 408
    code = "body_timeout"
    title = "Request body not received in time"


class Conflict(NbaError):
    status = 409
    code = "conflict"
    title = "Conflict"


class StoredDataUnreadable(Conflict):
    code = "stored_data_unreadable"
    title = "Stored data cannot be read"


class PayloadTooLarge(NbaError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class UnsupportedMediaType(NbaError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class RulesRejected(NbaError):
    status = 422
    code = "rules_invalid"
    title = "Rules are invalid"


class TooManyRequests(NbaError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int):
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class Unavailable(NbaError):
    """Worth retrying: every 503 says when (`Retry-After`, seconds). Retrying the same request is safe:
    decisions are new answers, events are idempotent on their ids, profile writes are replacements."""

    status = 503
    code = "unavailable"
    title = "Service unavailable"
    RETRY_AFTER = 1

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        errors: list[FieldError] | None = None,
        retry_after: int = RETRY_AFTER,
    ):
        super().__init__(detail, code=code, errors=errors, headers={"Retry-After": str(retry_after)})


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One problem in the rule files, printed as `file:line: key.path: message`."""

    file: str
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class RulesInvalid(Exception):
    def __init__(self, problems: list[RuleProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
