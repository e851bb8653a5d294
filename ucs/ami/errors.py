"""Errors the AMI layer hands to its callers.

Each one says what went wrong in words an operator can act on; the attributes
carry the same facts for code (``action``, Asterisk's ``message``).
"""

from __future__ import annotations

from collections.abc import Mapping

from twisted.python.failure import Failure


class AMIError(Exception):
    """Base class: anything the AMI layer fails a Deferred with."""


class AMIActionError(AMIError):
    """Asterisk answered ``Response: Error``.

    Kept apart from transport errors because it is a definite answer: the
    action reached Asterisk and was refused, so retrying it unchanged is
    pointless.
    """

    _text = "Asterisk refused {action}: {message}"

    def __init__(self, action: str, message: str, response: Mapping[str, str] | None = None) -> None:
        self.action = action
        self.message = message
        self.response: dict[str, str] = dict(response or {})
        super().__init__(self._text.format(action=action, message=message or "(no message)"))


class AMIAuthError(AMIActionError):
    """Login refused (wrong user or secret, or the challenge failed)."""

    _text = "AMI login refused by Asterisk ({action}): {message}"


class AMITimeoutError(AMIError):
    """No (complete) answer in time; the action may or may not have run."""

    def __init__(self, action: str, actionID: str, timeout: float) -> None:
        self.action = action
        self.actionID = actionID
        self.timeout = timeout
        super().__init__(f"no answer from Asterisk to {action} (ActionID {actionID}) within {timeout:g} s")


class AMIConnectionLost(AMIError):
    """The link went away while the action was pending; it may or may not have run."""

    def __init__(self, action: str | None, reason: Failure | None = None) -> None:
        self.action = action
        self.reason = reason
        why = reason.getErrorMessage() if reason is not None else "connection closed"
        what = f"Asterisk answered {action}" if action else "the banner arrived"
        super().__init__(f"AMI connection lost before {what}: {why}")


class AMINotConnected(AMIError):
    """Refused at once: no logged-in link, so nothing was sent.

    Failing fast (instead of queueing) lets the caller tell its user now; the
    layer above resynchronises from scratch after the next ``connected()``.
    """

    def __init__(self, action: str, state: str = "down") -> None:
        self.action = action
        self.state = state
        super().__init__(f"cannot send {action}: the AMI link is {state}, not logged in to Asterisk")
