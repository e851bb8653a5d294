"""Customer plugins (seeds 000/001): the loader, the ``ucs`` facade, shared data.

- :mod:`ucs.plugins.host`: :class:`PluginHost`, the service that finds, loads,
  reloads and stops plugins (files in the plugin directory, and
  :class:`~ucs.plugins.interfaces.IUCSPlugin` providers of installed packages);
- :mod:`ucs.plugins.facade`: :class:`UCS`, the ``ucs`` object each plugin gets,
  and :class:`PluginContext`, the parts of UCS it reaches;
- :mod:`ucs.plugins.importer`: how plugin files are imported (private module
  names; ``constants``, ``events`` and ``error`` mapped for plugin code only);
- :mod:`ucs.plugins.shared`: :class:`SharedData` and its change hooks;
- :mod:`ucs.plugins.api`: ``plugins.load/unload/list`` and ``shared.get/set/list``;
- :mod:`ucs.plugins.interfaces`: :class:`IUCSPlugin`, imported by packages'
  ``twisted/plugins`` modules (so this package imports nothing else here).

See docs/plugins.md.
"""
