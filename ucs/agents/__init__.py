"""Agents: the status machine carried out on Asterisk, wrap-up, suspensions,
statistics and the agent API methods.

- :mod:`ucs.agents.service` — :class:`Agents`, the service (a PBX and call observer);
- :mod:`ucs.agents.agent` — :class:`Agent`, one logged-in agent;
- :mod:`ucs.agents.transitions` — the status table and what each status is on Asterisk;
- :mod:`ucs.agents.membership` — queue memberships made to match, confirmed by Asterisk;
- :mod:`ucs.agents.hook` — the plugins' status change hook;
- :mod:`ucs.agents.stats` — the day's figures;
- :mod:`ucs.agents.persist` — what survives a restart;
- :mod:`ucs.agents.api` — ``agent.*`` and ``agents.*`` API methods.
"""

from ucs.agents.agent import Agent
from ucs.agents.service import Agents
from ucs.agents.stats import AgentStats, QueueStats
from ucs.agents.transitions import ACW_REASON, SUSPEND_REASON

__all__ = ["ACW_REASON", "SUSPEND_REASON", "Agent", "AgentStats", "Agents", "QueueStats"]
