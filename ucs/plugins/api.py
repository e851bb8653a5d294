"""API methods of the plugin host and of shared data.

``plugins.load(name)``, ``plugins.unload(name)`` and ``plugins.list()``
(seed 000, v2.4.0) are for superusers only; the registry refuses anyone
else, on every entry point (WebSocket, Interaction Processor, plugins'
``ucs.api``).  ``load`` of a plugin that is running stops it and loads it
again from its (possibly edited) file.

``shared.get(identifier)`` (agents and up) and ``shared.set(identifier,
data)`` (superusers) read and change shared data; a change goes through the
plugin change hook of the identifier, if any.  Shared data is the whole
centre's (no queue or team owns an identifier), so a supervisor, whose rights
end at their queues and teams, may not change it.
"""

from __future__ import annotations

from typing import Any

from ucs.api.registry import Param, Registry
from ucs.constants import Role
from ucs.plugins.host import PluginHost
from ucs.plugins.shared import MAX_IDENTIFIER, SharedData

_JSON = (dict, list, str, int, float, bool)


def _identifier(v: str) -> str:
    if not v.strip() or len(v) > MAX_IDENTIFIER:
        raise ValueError(f"{v!r} is not accepted; give a non-empty name of at most {MAX_IDENTIFIER} characters")
    return v


def register(registry: Registry, host: PluginHost, shared: SharedData | None = None) -> None:
    name = Param("name", str, doc="the plugin: its file's name (with or without .py) or a packaged plugin's name")

    def load(session: Any, name: str) -> dict[str, Any]:
        """Load a plugin, or stop and load again one that is loaded (picking up its edited file).
        Returns its description; fails with processing_error saying what failed."""
        return host.load(name)

    def unload(session: Any, name: str) -> dict[str, Any]:
        """Stop a plugin (its stop() is called and whatever it left registered is removed)."""
        return host.unload(name)

    def list_(session: Any) -> list[dict[str, Any]]:
        """Every plugin: name, kind (file | package), origin, state (running | failed | skipped |
        stopped | available), class, error, loaded (time), slow_hooks, slowest_hook."""
        return host.list_plugins()

    registry.add("plugins.load", load, [name], role=Role.SUPERUSER)
    registry.add("plugins.unload", unload, [name], role=Role.SUPERUSER)
    registry.add("plugins.list", list_, role=Role.SUPERUSER)

    if shared is None:
        return
    store = shared
    ident = Param("identifier", str, check=_identifier, doc="the shared data's name")

    def get(session: Any, identifier: str) -> Any:
        """The value of shared data ``identifier`` ({} if it was never set)."""
        return store.get(identifier)

    def set_(session: Any, identifier: str, data: Any) -> Any:
        """Change shared data ``identifier`` (the whole centre's: superusers only); the plugin
        hook of the identifier may change the value or refuse it (processing_error). Returns
        the value stored."""
        return store.set(identifier, data)

    def list_ids(session: Any) -> list[str]:
        """The identifiers that hold shared data."""
        return store.identifiers()

    registry.add("shared.get", get, [ident], role=Role.AGENT)
    registry.add("shared.set", set_, [ident, Param("data", _JSON, nullable=True, doc="any JSON value")],
                 role=Role.SUPERUSER)
    registry.add("shared.list", list_ids, role=Role.AGENT)
