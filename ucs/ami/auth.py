"""Logging in to AMI: plain ``Secret`` or the MD5 challenge.

MD5 is the default because it keeps the secret off the wire; Asterisk supports
it for every manager.conf user whose secret is stored in clear (all of them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Literal

from ucs.ami.errors import AMIActionError, AMIAuthError
from ucs.ami.message import Message
from ucs.ami.protocol import AMIProtocol

AuthType = Literal["md5", "plain"]


def eventsHeader(events: bool | str | Iterable[str]) -> str:
    """What to send as ``Events:``: ``on``, ``off`` or a class list such as ``system,call,agent``.

    Filtering by class at login is the cheapest way to cut the dialplan noise
    (VarSet, Newexten) a CTI server does not need.
    """
    if events is True:
        return "on"
    if events is False:
        return "off"
    if isinstance(events, str):
        return events
    return ",".join(events)


def md5Key(challenge: str, secret: str) -> str:
    """The ``Key`` Asterisk expects for an MD5 login: hex md5 of challenge + secret."""
    return hashlib.md5((challenge + secret).encode("utf-8")).hexdigest()


async def login(
    protocol: AMIProtocol,
    username: str,
    secret: str,
    *,
    events: bool | str | Iterable[str] = True,
    authType: AuthType = "md5",
    timeout: float | None = None,
) -> Message:
    """Log ``protocol`` in; returns Asterisk's ``Authentication accepted`` response.

    Raises :class:`AMIAuthError` carrying Asterisk's ``Message`` when the
    challenge or the login is refused; transport errors (timeout, connection
    lost) pass through unchanged so the caller can tell "wrong password" from
    "Asterisk is not answering".
    """
    ev = eventsHeader(events)
    try:
        if authType == "md5":
            challenge = await protocol.sendAction("Challenge", {"AuthType": "MD5"}, timeout=timeout)
            if "Challenge" not in challenge:
                raise AMIAuthError("Challenge", "Asterisk sent no Challenge in its response", challenge)
            headers: dict[str, object] = {
                "AuthType": "MD5",
                "Username": username,
                "Key": md5Key(challenge["Challenge"], secret),
                "Events": ev,
            }
        elif authType == "plain":
            headers = {"Username": username, "Secret": secret, "Events": ev}
        else:
            raise ValueError(f"authType must be 'md5' or 'plain', not {authType!r}")
        response: Message = await protocol.sendAction("Login", headers, timeout=timeout)
    except AMIAuthError:
        raise
    except AMIActionError as e:
        raise AMIAuthError(e.action, e.message, e.response) from None
    return response
