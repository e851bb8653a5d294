"""``lookup.number``: what the caller lookup knows of a number (agent bars
use it for a number typed in; support uses it to check a source)."""

from __future__ import annotations

from typing import Any

from ucs.api.registry import Param, Registry
from ucs.constants import Role
from ucs.lookup.service import LookupService


def _number(v: str) -> str:
    v = v.strip()
    if not v or len(v) > 64:
        raise ValueError(f"{v!r} is not accepted; give a phone number (1 to 64 characters)")
    return v


def register(registry: Registry, service: LookupService) -> None:
    async def number(session: Any, number: str) -> dict[str, Any]:
        """Look a number up in the configured sources (through the plugins' transformer):
        ``{lookup_id, number, name, external_id, data}``; empty strings and ``{}`` when unknown."""
        result = await service.lookup(number)
        return result.to_dict()

    registry.add("lookup.number", number, [Param("number", str, check=_number, doc="the phone number")],
                 role=Role.AGENT)
