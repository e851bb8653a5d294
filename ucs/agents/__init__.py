"""Agents: the status machine carried out on Asterisk, wrap-up, suspensions,
statistics and the agent API methods.

- :mod:`ucs.agents.transitions` — the status machine as one table (state × input →
  next state, what is carried out on the PBX, refusal) and what each status is on Asterisk;
- :mod:`ucs.agents.service` — :class:`Agents`, the service: the roster, requests, the
  per-agent lock, carrying a row out (carry / apply / commit);
- :mod:`ucs.agents.logins` — login, logout, a bar that did not come back, a phone change;
- :mod:`ucs.agents.restore` — start and stop: the agents back from the store, a cluster's hand-over;
- :mod:`ucs.agents.agent` — :class:`Agent`, one logged-in agent;
- :mod:`ucs.agents.membership` — queue memberships made to match, confirmed by Asterisk
  (through :mod:`ucs.calls.confirm`, the one confirmation module);
- :mod:`ucs.agents.follow` — pauses and unpauses made outside UCS, followed;
- :mod:`ucs.agents.counting` — the call observer: busy phones, each leg's figures;
- :mod:`ucs.agents.wrapup` — wrap-up: the pause ahead of it, its start, its timer;
- :mod:`ucs.agents.reconcile` — memberships put back after a restart or resync; orphans;
- :mod:`ucs.agents.figures` — the day's figures per user, saved, reset at midnight;
- :mod:`ucs.agents.stats` — what each figure counts;
- :mod:`ucs.agents.persist` — what survives a restart;
- :mod:`ucs.agents.hook` — the plugins' status change hook;
- :mod:`ucs.agents.api` — ``agent.*`` and ``agents.*`` API methods.

Submodules import each other by their full names (``from ucs.agents.persist
import …``), never ``from ucs.agents import …``: this package imports the
service, so the service must not import the package.
"""

from ucs.agents.agent import Agent
from ucs.agents.service import Agents
from ucs.agents.stats import AgentStats, QueueStats
from ucs.agents.transitions import ACW_REASON, SUSPEND_REASON

__all__ = ["ACW_REASON", "SUSPEND_REASON", "Agent", "AgentStats", "Agents", "QueueStats"]
