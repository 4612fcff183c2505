"""The exceptions of cliproxy: one class per kind of failure the core knows.

The native module raises these classes (it looks them up in ``BY_KIND``), so what a caller catches from an
in-process ``Client`` is the same family whatever provider or dialect was involved.
"""

from __future__ import annotations

from typing import Dict, Optional, Type


class Error(Exception):
    """Base class of every cliproxy error.

    Attributes (``None`` where not known):

    - ``kind``: the core's stable snake_case name of the failure (``"rate_limited"``, ...).
    - ``message``: the human-readable explanation.
    - ``status``: the upstream's HTTP status, when the error came from an upstream answer.
    - ``retry_after``: seconds to wait before retrying, as a float.
    - ``credential``: the id (never the secret) of the credential involved, e.g. ``"claude:key-0"``.
    - ``model``: the model involved.
    - ``code``: the OpenAI-style error code (``"model_cooldown"``, ``"invalid_api_key"``, ...).
    - ``fault``: whose fault it is: ``"client"`` (the request or key), ``"upstream"`` or ``"ours"``.

    Where the core knows what caused the error (a refused connection, say), it is the exception's ``__cause__``.
    """

    kind: str = "error"

    def __init__(
        self,
        message: str = "",
        *,
        kind: Optional[str] = None,
        status: Optional[int] = None,
        retry_after: Optional[float] = None,
        credential: Optional[str] = None,
        model: Optional[str] = None,
        code: Optional[str] = None,
        fault: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if kind is not None:
            self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.credential = credential
        self.model = model
        self.code = code
        self.fault = fault

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        facts = [f"{name}={getattr(self, name)!r}" for name in ("status", "retry_after", "credential", "model")
                 if getattr(self, name) is not None]
        return f"{type(self).__name__}({', '.join([repr(self.message)] + facts)})"


class ConfigError(Error):
    """The configuration is invalid, or nothing is configured that could serve the request."""

    kind = "config"


class AuthenticationError(Error):
    """A key or token was rejected (the upstream's, for an in-process client)."""

    kind = "authentication"


class PermissionDeniedError(Error):
    """Authenticated, but not allowed."""

    kind = "permission"


class InvalidRequestError(Error):
    """The request is malformed; retrying it unchanged will not help."""

    kind = "invalid_request"


class ModelNotFoundError(Error):
    """No configured credential serves the requested model."""

    kind = "model_not_found"


class RateLimitError(Error):
    """Too many requests, or every credential for the model is cooling down; ``retry_after`` says how long."""

    kind = "rate_limited"


class QuotaExceededError(Error):
    """A usage quota is used up; ``retry_after`` says when it resets, where known."""

    kind = "quota_exceeded"


class UpstreamError(Error):
    """The upstream failed (its HTTP status is in ``status``) or sent something that could not be understood."""

    kind = "upstream"


class TimeoutError(Error):  # noqa: A001 - the name mirrors the core's kind; it is not the builtin
    """The upstream did not answer in time."""

    kind = "timeout"


class CancelledError(Error):
    """The operation was abandoned (a login nobody completed, say)."""

    kind = "cancelled"


BY_KIND: Dict[str, Type[Error]] = {
    cls.kind: cls
    for cls in (
        ConfigError,
        AuthenticationError,
        PermissionDeniedError,
        InvalidRequestError,
        ModelNotFoundError,
        RateLimitError,
        QuotaExceededError,
        UpstreamError,
        TimeoutError,
        CancelledError,
    )
}


class ConfigWarning(UserWarning):
    """Something in the configuration was ignored (an unknown key, say). Issued through ``warnings``."""
