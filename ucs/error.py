"""The errors UCS's API raises, as plugins and clients see them.

Plugins import these as ``from error import ProcessingError`` (seeds 000/001);
the WebSocket API and the Interaction Processor turn them into error replies
with ``code`` and ``message``.  Every message says what was wrong and what is
accepted.
"""

from __future__ import annotations

from typing import Any


class UCSError(Exception):
    """Base of every error a client or plugin may see; ``code`` is stable."""

    code = 500
    kind = "error"

    def __init__(self, message: Any = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        m = self.message
        if isinstance(m, dict):
            return "; ".join(f"{k}: {v}" for k, v in m.items())
        return str(m)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"code": self.code, "error": self.kind, "message": str(self)}
        if isinstance(self.message, dict):
            d["fields"] = {str(k): str(v) for k, v in self.message.items()}
        return d


class ProcessingError(UCSError):
    """The request was understood but cannot be carried out (blocked by a hook, the PBX refused…)."""

    code = 409
    kind = "processing_error"


class InvalidDataInput(UCSError):
    """An argument is missing or wrong.  ``message`` may be a dict of field → what is wrong."""

    code = 400
    kind = "invalid_data"


class PermissionDenied(UCSError):
    code = 403
    kind = "permission_denied"


class AuthenticationFailed(UCSError):
    code = 401
    kind = "authentication_failed"


class NotFound(UCSError):
    code = 404
    kind = "not_found"


class MethodNotFound(NotFound):
    kind = "method_not_found"


class InvalidState(UCSError):
    """The method is not allowed in the session's (or agent's, or call's) current state."""

    code = 412
    kind = "invalid_state"


class PBXError(ProcessingError):
    """Asterisk refused or did not confirm an action."""

    code = 502
    kind = "pbx_error"


class TooManyRequests(UCSError):
    code = 429
    kind = "too_many_requests"
