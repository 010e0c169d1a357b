"""FHIR errors as data: each carries its HTTP status and OperationOutcome issues.

Raised anywhere below the HTTP edge and rendered once, at the edge, as an
OperationOutcome (FHIR R4 operationoutcome.html). Diagnostics never carry stored
health data or SQL: they name the fault and the FHIRPath ``expression`` where it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

Severity = Literal["fatal", "error", "warning", "information"]

__all__ = [
    "Conflict",
    "FhirError",
    "Forbidden",
    "Gone",
    "Invalid",
    "Issue",
    "MethodNotAllowed",
    "NotAcceptable",
    "NotFound",
    "NotSupported",
    "PayloadTooLarge",
    "PreconditionFailed",
    "ServerError",
    "Unauthorized",
    "Unprocessable",
    "UnsupportedMediaType",
    "operation_outcome",
]


@dataclass(frozen=True, slots=True)
class Issue:
    """One OperationOutcome.issue: severity, IssueType code, text, FHIRPath expressions."""

    severity: Severity
    code: str
    diagnostics: str
    expression: tuple[str, ...] = field(default=())

    def to_fhir(self) -> dict[str, Any]:
        issue: dict[str, Any] = {"severity": self.severity, "code": self.code}
        if self.diagnostics:
            issue["diagnostics"] = self.diagnostics
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


def operation_outcome(issues: list[Issue] | tuple[Issue, ...]) -> dict[str, Any]:
    """An OperationOutcome resource for ``issues`` (at least one issue, as R4 requires)."""
    rendered = [i.to_fhir() for i in issues] or [
        {"severity": "information", "code": "informational", "diagnostics": "All OK"}
    ]
    return {"resourceType": "OperationOutcome", "issue": rendered}


class FhirError(Exception):
    """Base of every error that the HTTP edge renders as an OperationOutcome."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "processing"
    headers: dict[str, str]

    def __init__(
        self,
        diagnostics: str,
        expression: str | tuple[str, ...] | None = None,
        *,
        issues: list[Issue] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        if isinstance(expression, str):
            expression = (expression,)
        self.diagnostics = diagnostics
        self.issues: list[Issue] = issues or [
            Issue("error", self.code, diagnostics, expression or ())
        ]
        self.headers = headers or {}

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)


class Invalid(FhirError):
    """400: the request or the resource does not parse or is structurally wrong."""

    status = 400
    code = "invalid"


class Unprocessable(FhirError):
    """422: well-formed, but breaks a business rule (binding, profile, reference)."""

    status = 422
    code = "processing"


class NotSupported(FhirError):
    """400: a parameter, modifier or feature the server does not support."""

    status = 400
    code = "not-supported"


class Unauthorized(FhirError):
    status = 401
    code = "login"


class Forbidden(FhirError):
    status = 403
    code = "forbidden"


class NotFound(FhirError):
    status = 404
    code = "not-found"


class MethodNotAllowed(FhirError):
    status = 405
    code = "not-supported"


class NotAcceptable(FhirError):
    status = 406
    code = "not-supported"


class Conflict(FhirError):
    status = 409
    code = "conflict"


class Gone(FhirError):
    status = 410
    code = "deleted"


class PreconditionFailed(FhirError):
    status = 412
    code = "conflict"


class PayloadTooLarge(FhirError):
    status = 413
    code = "too-costly"


class UnsupportedMediaType(FhirError):
    status = 415
    code = "not-supported"


class ServerError(FhirError):
    status = 500
    code = "exception"
