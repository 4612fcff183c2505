"""cliproxy: a multi-provider LLM proxy core, in-process.

``Client`` / ``AsyncClient`` route OpenAI Chat Completions and Anthropic Messages requests across the configured
credentials (failover, cooldowns, rate limits, translation between the two APIs) without a server; ``serve()``
starts the reference HTTP server in this process. See the README for examples.
"""

from ._client import AsyncClient, AsyncStream, Client, ConfigSource, Stream
from ._errors import (
    AuthenticationError,
    CancelledError,
    ConfigError,
    ConfigWarning,
    Error,
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    TimeoutError,
    UpstreamError,
)
from ._native import LoginFlow, __version__
from ._server import Server, serve

__all__ = [
    "AsyncClient",
    "AsyncStream",
    "AuthenticationError",
    "CancelledError",
    "Client",
    "ConfigError",
    "ConfigSource",
    "ConfigWarning",
    "Error",
    "InvalidRequestError",
    "LoginFlow",
    "ModelNotFoundError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimitError",
    "Server",
    "Stream",
    "TimeoutError",
    "UpstreamError",
    "__version__",
    "serve",
]
