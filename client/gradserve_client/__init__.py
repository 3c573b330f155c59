"""gradserve's Python client: `Client(base_url, api_key)` and the `gradserve` command."""

from ._version import __version__
from .client import Client
from .errors import (
    APIConnectionError,
    APIError,
    Conflict,
    GradserveError,
    InvalidRequest,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    Unavailable,
    WaitTimeout,
)
from .jobs import TERMINAL, Event
from .transport import RetryPolicy

__all__ = [
    "__version__",
    "APIConnectionError",
    "APIError",
    "Client",
    "Conflict",
    "Event",
    "GradserveError",
    "InvalidRequest",
    "NotFound",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "TERMINAL",
    "Unauthorized",
    "Unavailable",
    "WaitTimeout",
]
