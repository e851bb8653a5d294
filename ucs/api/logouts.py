"""What a logout does to a user's sessions, the same on the node it is made on and on
every other node of a cluster (issue 20).

Three kinds, each what one UCS process always did to the user's sessions:

- :data:`LOGOUT`: the user logged out (``logout``): every session of theirs goes back
  to the login form; the other tabs are told ``logout`` ("logged out in another
  window").
- :data:`FORCED`: an administrator logged them out (``ops.logout``): every session of
  a person (an agent bar, an Interaction Processor client) is closed with the reason,
  which the bar shows ("You were logged out by an administrator.").
- :data:`UNPAIRED`: a supervisor logged the agent out (``agents.logout``): the bars
  working on a phone go back to choosing one.
- :data:`ELSEWHERE`: the user logged in (again): their sessions with ``autologout``
  are closed ("logged in elsewhere").

:func:`end` carries one out on this process's sessions and, unless it is another
node's (``announce=False``), tells the manager's ``ended_watchers``: in a cluster the
node's :class:`ucs.api.stored_logouts.StoredLogouts`, which writes it to the store and
has :class:`ucs.cluster.sessync.SessionSync` tell every other node, where :func:`end`
runs again (from the notice, or from the store when the notice was missed).
"""

from __future__ import annotations

from collections.abc import Callable

from ucs.api.session import Session, SessionManager
from ucs.constants import SessionState as S

LOGOUT = "logout"
FORCED = "forced"
UNPAIRED = "unpaired"
ELSEWHERE = "elsewhere"
KINDS = (LOGOUT, FORCED, UNPAIRED, ELSEWHERE)
#: The kinds of session that are someone logged in (not UCS's own, nor a plugin's).
PEOPLE = ("ws", "iserver")


def end(sessions: SessionManager, user_id: int, how: str, reason: str = "", *, keep: object = None,
        announce: bool = True, only: Callable[[Session], bool] | None = None) -> int:
    """End ``user_id``'s sessions here as ``how`` says (``keep``: the session that asked,
    which its own handler answers; ``only``: those it accepts, when another node's logout
    read late must spare the sessions logged in since); returns how many were touched."""
    if how not in KINDS:
        raise ValueError(f"{how!r} is not a kind of logout; {', '.join(KINDS)}")
    touched = 0
    for s in sessions.of_user(user_id):
        if only is not None and not only(s):
            continue
        if how == LOGOUT:
            s.user, s.line, s.state = None, None, S.CREDENTIALS
            if s is not keep and s.push is not None:
                s.push("logout", {"reason": "logged out in another window"})
        elif how in (FORCED, ELSEWHERE):
            if s.kind not in PEOPLE or s is keep or (how == ELSEWHERE and not s.autologout):
                continue
            sessions.close(s, reason)
        elif s.state in (S.DEVICE, S.READY):
            s.line, s.state = None, S.IDENTIFY
        else:
            continue
        touched += 1
    if announce:
        for watcher in list(getattr(sessions, "ended_watchers", ())):
            watcher(user_id, how, reason)
    return touched
