"""``IUCSPlugin``: how an installable package offers UCS a plugin.

A package ships one small module in its own ``twisted/plugins/`` directory
(no ``__init__.py`` there), holding a provider of :class:`IUCSPlugin`::

    # mypackage's twisted/plugins/ucs_mypackage.py
    from ucs.plugins.interfaces import UCSPlugin

    greeter = UCSPlugin("greeter", "mypackage.greeter:Greeter", "Greets agents who log in")

UCS finds it at start with ``twisted.plugin.getPlugins(IUCSPlugin,
twisted.plugins)`` and runs it with the same life cycle as a file in the
plugin directory: the class is called with the ``ucs`` facade, ``start()`` is
called if the instance has one, ``stop()`` on unload, reload and shutdown.

Discovery imports every module of ``twisted/plugins`` (``twistd`` does too),
so this module imports nothing heavy and :class:`UCSPlugin` imports the
plugin's own module only when the plugin is loaded.
"""

from __future__ import annotations

import importlib
from typing import Any

from twisted.plugin import IPlugin
from zope.interface import Attribute, Interface, implementer


class IUCSPlugin(Interface):
    """A plugin offered by an installed package."""

    name = Attribute("The plugin's name (str), unique among UCS's plugins; plugins.load/unload use it.")
    description = Attribute("One line saying what the plugin does (str).")

    def create(ucs: Any) -> Any:
        """Build the plugin instance for the ``ucs`` facade.

        The instance may have ``start()`` (called once it is built) and
        ``stop()`` (called on unload, reload and shutdown).
        """

    def reload() -> None:
        """Re-read the plugin's code (``plugins.load`` of a loaded plugin calls
        this between the old instance's ``stop()`` and the new ``create()``)."""


@implementer(IPlugin, IUCSPlugin)
class UCSPlugin:
    """The usual :class:`IUCSPlugin`: ``factory`` is ``"module:Class"`` (or
    ``"module.Class"``), imported when the plugin is loaded."""

    def __init__(self, name: str, factory: str, description: str = "") -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a UCS plugin needs a name, not {name!r}")
        self.name = name
        self.description = description
        self.factory = factory
        module, sep, attr = factory.partition(":")
        if not sep:
            module, _, attr = factory.rpartition(".")
        if not module or not attr:
            raise ValueError(f"plugin {name}: factory {factory!r} is not accepted; give 'package.module:Class'")
        self._module = module
        self._attr = attr

    def _load(self) -> Any:
        obj: Any = importlib.import_module(self._module)
        for part in self._attr.split("."):
            obj = getattr(obj, part)
        return obj

    def create(self, ucs: Any) -> Any:
        return self._load()(ucs)

    def reload(self) -> None:
        importlib.reload(importlib.import_module(self._module))

    def __repr__(self) -> str:
        return f"<UCSPlugin {self.name} ({self.factory})>"
