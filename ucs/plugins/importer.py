"""Importing a plugin file, and the three module names plugins expect.

Plugins written against seeds 000/001 say ``from constants import AGENT_AUX``,
``from events import EVENT_AGENT_STATUS`` and ``from error import
ProcessingError``: in the old server those were top-level modules.  UCS keeps
them in its package (``ucs.constants``, ``ucs.events``, ``ucs.error``) and
must not put modules with such common names in ``sys.modules`` for everyone:
a library that does ``import constants`` must not get UCS's.

So each plugin module gets builtins of its own whose ``__import__`` maps those
three names to UCS's modules and hands every other import to the real
``__import__``.  The ``import`` statement looks ``__import__`` up in the
builtins of the code running it, and a function keeps the builtins of the
module it was defined in, so the mapping applies to every import the plugin's
code runs — at module level, in its methods, in its threads — and to no other
code.  ``import constants`` anywhere else still raises ``ImportError``.  The same
``__import__`` gives plugins a ``threading`` whose ``Thread`` accepts the seed's
``super().__init__(self)`` (see :class:`Thread`).
(``importlib.import_module("constants")`` does not use ``__import__`` and is
not mapped, in plugins either.)

A plugin file is imported as ``ucs.plugins.files.<name>``, a name nothing
else uses, so ``plugins/json.py`` shadows neither ``json`` nor anything in
UCS; each load compiles the file afresh (no ``__pycache__`` is written into
the plugin directory, and an edited file is always picked up).
"""

from __future__ import annotations

import builtins
import hashlib
import importlib
import importlib.abc
import importlib.util
import linecache
import re
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

#: What a plugin's ``import X`` means for the seeds' top-level modules.
ALIASES: Mapping[str, str] = {
    "constants": "ucs.constants",
    "events": "ucs.events",
    "error": "ucs.error",
}

#: Parent of every plugin module's name.
PACKAGE = "ucs.plugins.files"


class Thread(threading.Thread):
    """``threading.Thread`` as plugin code sees it.

    Seed 000's ``Example(threading.Thread)`` calls ``super().__init__(self)``,
    which hands the thread itself to ``Thread``'s first parameter, ``group``;
    CPython's ``Thread`` asserts ``group is None`` (so the seed's code only ran
    with ``python -O``).  This one takes that ``self`` for the ``None`` it meant
    and is otherwise the standard class."""

    def __init__(self, group: Any = None, *args: Any, **kwargs: Any) -> None:
        if group is self:
            group = None
        super().__init__(group, *args, **kwargs)


def _threading_for_plugins() -> ModuleType:
    """The ``threading`` module plugins import: the standard one, with :class:`Thread` above."""
    module = ModuleType("threading", threading.__doc__)
    module.__dict__.update(Thread=Thread, __all__=list(threading.__all__),
                           __getattr__=lambda name: getattr(threading, name))
    return module


_THREADING = _threading_for_plugins()

_real_import = builtins.__import__


def plugin_import(
    name: str,
    globals: Mapping[str, Any] | None = None,
    locals: Mapping[str, Any] | None = None,
    fromlist: Sequence[str] | None = (),
    level: int = 0,
) -> ModuleType:
    """``__import__`` for plugin code: the seeds' module names, then the usual."""
    if level == 0:
        if name == "threading":
            return _THREADING
        head, _, rest = name.partition(".")
        target = ALIASES.get(head)
        if target is not None:
            if rest:
                raise ModuleNotFoundError(f"No module named {name!r} ({head} is a module, not a package)",
                                          name=name)
            return importlib.import_module(target)
    return _real_import(name, globals, locals, fromlist or (), level)


def plugin_builtins() -> dict[str, Any]:
    """A copy of the builtins whose ``__import__`` is :func:`plugin_import`."""
    b = dict(builtins.__dict__)
    b["__import__"] = plugin_import
    return b


def module_name(stem: str) -> str:
    """The private module name of plugin file ``stem``.py."""
    ident = re.sub(r"\W", "_", stem)
    if not ident or ident[0].isdigit():
        ident = "_" + ident
    if ident != stem:  # "a-b" and "a_b" must not share a module
        ident += "_" + hashlib.sha1(stem.encode()).hexdigest()[:8]
    return f"{PACKAGE}.{ident}"


class _PluginLoader(importlib.abc.Loader):
    def __init__(self, path: Path) -> None:
        self.path = path

    def create_module(self, spec: Any) -> None:
        return None  # the default module

    def get_source(self, fullname: str) -> str:
        return self.path.read_text(encoding="utf-8")

    def exec_module(self, module: ModuleType) -> None:
        source = self.path.read_bytes()
        code = compile(source, str(self.path), "exec", dont_inherit=True)
        module.__dict__["__builtins__"] = plugin_builtins()
        exec(code, module.__dict__)


def import_plugin_file(path: Path) -> ModuleType:
    """Import ``path`` as a plugin module (replacing an earlier import of it).

    Raises whatever importing the file raised; then nothing is left in
    ``sys.modules``, and an earlier import of the same file stays as it was.
    """
    name = module_name(path.stem)
    linecache.checkcache(str(path))  # tracebacks show the file as it is now
    loader = _PluginLoader(path)
    spec = importlib.util.spec_from_file_location(name, str(path), loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    # In sys.modules while it runs, as for any import: dataclasses, typing and
    # pickle look the module up by name.
    sys.modules[name] = module
    try:
        loader.exec_module(module)
    except BaseException:
        if previous is not None:
            sys.modules[name] = previous
        else:
            sys.modules.pop(name, None)
        raise
    return module


def forget(path: Path, module: ModuleType | None = None) -> None:
    """Drop a plugin file's module from ``sys.modules`` (if it is ``module``, when given)."""
    name = module_name(path.stem)
    if module is None or sys.modules.get(name) is module:
        sys.modules.pop(name, None)
