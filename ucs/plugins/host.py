"""The plugin host: finds, loads, reloads and stops customer plugins.

Two ways in, one life cycle:

- **files** in the plugin directory (``[plugins] directory``, default
  ``plugins/``): at start every ``*.py`` file except ``__init__.py`` (and
  hidden files) is imported, in name order.  The class to run is the one
  ``UCS_PLUGIN`` names (seed 000, v2.4.0); a file without ``UCS_PLUGIN`` is
  skipped, as the seed says, unless ``[plugins] classes`` names a class for
  it (``classes = {lookup_names = "LookupTransformer"}``); the skip names the
  class that looks like the plugin.  The plugin's name is the file's name
  without ``.py``.
- **packages**: providers of :class:`~ucs.plugins.interfaces.IUCSPlugin` in
  any installed package's ``twisted/plugins/`` directory, found with
  ``twisted.plugin.getPlugins(IUCSPlugin, twisted.plugins)``; the plugin's
  name is the provider's ``name``.

The class is called with the plugin's ``ucs`` facade; ``start()`` is called
if the instance has one; ``stop()`` (if it has one) on unload, reload and
shutdown, after which whatever the plugin left registered is removed.  A
plugin that fails to import, to construct or to start is logged (file,
plugin, traceback), kept in :meth:`PluginHost.list` with the error, and the
rest of UCS goes on; through the API the caller gets a ``ProcessingError``
saying what failed.  Reloading a file plugin imports the edited file first:
if that fails, the running version is kept.
"""

from __future__ import annotations

import importlib
import inspect
import re
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
from twisted.application.service import Service
from twisted.logger import Logger
from twisted.plugin import getPlugins

from ucs.error import InvalidDataInput, NotFound, ProcessingError
from ucs.plugins import importer
from ucs.plugins.facade import UCS, PluginContext
from ucs.plugins.interfaces import IUCSPlugin

log = Logger(namespace="ucs.plugins")

RUNNING, FAILED, SKIPPED, STOPPED, AVAILABLE = "running", "failed", "skipped", "stopped", "available"
FILE, PACKAGE = "file", "package"

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")


class PluginError(ProcessingError):
    """A plugin could not be loaded: what failed and why (the traceback is in the log)."""


@attrs.define(eq=False)
class PluginRecord:
    name: str
    kind: str                 # file | package
    origin: str               # the file's path, or the provider (package:object)
    state: str = STOPPED
    class_name: str = ""
    error: str = ""           # why it failed or was skipped (one line)
    loaded_at: float | None = None
    instance: Any = None
    facade: UCS | None = None
    module: ModuleType | None = None
    provider: Any = None      # the IUCSPlugin provider of a packaged plugin

    def describe(self) -> dict[str, Any]:
        slow = self.facade.slow if self.facade is not None else None
        return {
            "name": self.name, "kind": self.kind, "origin": self.origin, "state": self.state,
            "class": self.class_name, "error": self.error or None, "loaded": self.loaded_at,
            "slow_hooks": slow.count if slow else 0,
            "slowest_hook": {"hook": slow.slowest_hook, "seconds": round(slow.slowest, 6)}
            if slow and slow.count else None,
        }


def _one_line(e: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(e), e)).strip().replace("\n", " ")


def _takes_ucs(cls: type) -> bool:
    try:
        inspect.signature(cls).bind(object())
    except (TypeError, ValueError):
        return False
    return True


class PluginHost(Service):
    """Runs the plugins; a child service of UCS, started after the store and
    the domain services, stopped before them."""

    def __init__(
        self,
        context: PluginContext,
        directory: str | Path | None = "plugins",
        *,
        classes: Mapping[str, str] | None = None,
        packages: Sequence[str | ModuleType] = ("twisted.plugins",),
    ) -> None:
        self.setName("plugins")
        self.context = context
        self.directory = Path(directory) if directory is not None else None
        self.classes = dict(classes or {})
        self.packages = list(packages)
        self._records: dict[str, PluginRecord] = {}
        self._providers: dict[str, Any] = {}

    # --- service -----------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.load_all()

    def stopService(self) -> None:
        super().stopService()
        self.unload_all()

    def load_all(self) -> None:
        """Load every file plugin, then every packaged one; failures are logged, not raised."""
        for path in self.files():
            try:
                self._load_file(path)
            except ProcessingError:
                pass  # logged and recorded
        for provider in self.discover().values():
            if provider.name in self._records and self._records[provider.name].kind == FILE:
                continue  # reported by discover()
            try:
                self._load_package(provider)
            except ProcessingError:
                pass
        running = [r.name for r in self._records.values() if r.state == RUNNING]
        failed = [r.name for r in self._records.values() if r.state == FAILED]
        log.info("plugins: {n} running{names}{failed}; plugin directory {where}", n=len(running),
                 names=f" ({', '.join(running)})" if running else "",
                 failed=f"; failed: {', '.join(failed)}" if failed else "", where=self._where())

    def _where(self) -> str:
        """The plugin directory as searched (absolute: a relative one is relative to where UCS started)."""
        if self.directory is None:
            return "none"
        path = str(self.directory.absolute())
        return path if self.directory.is_dir() else f"{path} (does not exist)"

    def unload_all(self) -> None:
        """Stop every running plugin, the last loaded first."""
        for record in reversed(list(self._records.values())):
            if record.state == RUNNING:
                self._stop(record, "shutdown")

    # --- finding ------------------------------------------------------------------------

    def files(self) -> list[Path]:
        if self.directory is None or not self.directory.is_dir():
            return []
        return sorted(
            p for p in self.directory.glob("*.py")
            if p.name != "__init__.py" and not p.name.startswith(".") and p.is_file()
        )

    def discover(self) -> dict[str, Any]:
        """The IUCSPlugin providers of the packages, by name."""
        found: dict[str, Any] = {}
        for package in self.packages:
            try:
                module = importlib.import_module(package) if isinstance(package, str) else package
                providers = list(getPlugins(IUCSPlugin, module))
            except Exception:
                log.failure("plugins: cannot search {package} for packaged plugins", package=str(package))
                continue
            for provider in providers:
                name = getattr(provider, "name", None)
                if not isinstance(name, str) or not _NAME.match(name):
                    log.error("plugins: packaged plugin {provider!r} has no usable name ({name!r}); skipped",
                              provider=provider, name=name)
                    continue
                if name in found and found[name] is not provider:
                    log.error("plugins: two packaged plugins are named {name}: {a!r} and {b!r}; "
                              "only the first is used", name=name, a=found[name], b=provider)
                    continue
                existing = self._records.get(name)
                if existing is not None and existing.kind == FILE:
                    log.error("plugins: packaged plugin {provider!r} is named {name}, like the file {file}; "
                              "the file is used", provider=provider, name=name, file=existing.origin)
                    continue
                found[name] = provider
        self._providers = found
        return found

    def _path_of(self, name: str) -> Path | None:
        if self.directory is None:
            return None
        stem = name[:-3] if name.endswith(".py") else name
        path = self.directory / f"{stem}.py"
        return path if path.is_file() else None

    # --- the API's entry points ----------------------------------------------------------

    def load(self, name: str) -> dict[str, Any]:
        """Load ``name``, or stop and reload it if it is loaded; the plugin's description.
        Raises NotFound or PluginError saying what went wrong."""
        name = self._check_name(name)
        path = self._path_of(name)
        if path is not None:
            return self._load_file(path).describe()
        stem = name[:-3] if name.endswith(".py") else name
        record = self._records.get(stem)
        if record is not None and record.kind == FILE:
            raise NotFound(f"plugin file {record.origin} is gone")
        provider = self.discover().get(stem)
        if provider is None:
            raise NotFound(f"there is no plugin {name!r}; {self._known()}")
        return self._load_package(provider).describe()

    def unload(self, name: str) -> dict[str, Any]:
        name = self._check_name(name)
        stem = name[:-3] if name.endswith(".py") else name
        record = self._records.get(stem)
        if record is None:
            raise NotFound(f"there is no plugin {name!r}; {self._known()}")
        if record.state != RUNNING:
            raise ProcessingError(f"plugin {stem} is not running (it is {record.state})")
        self._stop(record, "unload")
        return record.describe()

    def list_plugins(self) -> list[dict[str, Any]]:
        """Every plugin UCS knows of: loaded or failed ones, and files and packaged
        plugins not loaded (state ``available``)."""
        out = {name: r.describe() for name, r in self._records.items()}
        for path in self.files():
            if path.stem not in out:
                out[path.stem] = PluginRecord(path.stem, FILE, str(path), AVAILABLE).describe()
        for name, provider in self._providers.items():
            if name not in out:
                out[name] = PluginRecord(name, PACKAGE, repr(provider), AVAILABLE).describe()
        return sorted(out.values(), key=lambda d: d["name"])

    def get(self, name: str) -> PluginRecord:
        record = self._records.get(name)
        if record is None:
            raise NotFound(f"there is no plugin {name!r}; {self._known()}")
        return record

    def running_plugins(self) -> list[str]:
        return [r.name for r in self._records.values() if r.state == RUNNING]

    def _check_name(self, name: Any) -> str:
        if not isinstance(name, str) or not _NAME.match(name) or "/" in name or "\\" in name or ".." in name:
            raise InvalidDataInput({"name": f"{name!r} is not a plugin name; give the file's name "
                                            f"(with or without .py) or a packaged plugin's name"})
        return name

    def _known(self) -> str:
        names = sorted({p.stem for p in self.files()} | set(self._records) | set(self._providers))
        where = f"files in {self.directory}" if self.directory is not None else "no plugin directory"
        return f"known plugins ({where} and packaged): {', '.join(names) or 'none'}"

    # --- loading -------------------------------------------------------------------------

    def _record(self, name: str, kind: str, origin: str) -> PluginRecord:
        record = self._records.get(name)
        if record is None:
            record = self._records[name] = PluginRecord(name, kind, origin)
        else:
            # A reload goes to the end of the order: shutdown stops it first.
            del self._records[name]
            self._records[name] = record
            record.kind, record.origin = kind, origin
        return record

    def _fail(self, record: PluginRecord, stage: str, e: BaseException, kept: bool = False) -> PluginError:
        what = f"plugin {record.name} ({record.origin}) failed to {stage}: {_one_line(e)}"
        log.failure("{what}", what=what, plugin=record.name, file=record.origin)
        if kept:
            record.error = f"{what}; the running version was kept"
        else:
            record.state = FAILED
            record.error = what
        return PluginError(f"{record.error}; the traceback is in the server log")

    def _load_file(self, path: Path) -> PluginRecord:
        name = path.stem
        existing = self._records.get(name)
        kept = existing is not None and existing.state == RUNNING
        record = existing or PluginRecord(name, FILE, str(path))
        try:
            module = importer.import_plugin_file(path)
        except (Exception, SystemExit) as e:
            if existing is None:
                self._records[name] = record
            raise self._fail(record, "import", e, kept=kept) from None
        cls, why, bad = self._plugin_class(module, name)
        if kept:
            assert existing is not None
            self._stop(existing, "reload")
        record = self._record(name, FILE, str(path))
        record.module, record.provider = module, None
        if cls is None:
            importer.forget(path, module)
            record.module, record.class_name = None, ""
            if bad:
                record.state, record.error = FAILED, f"plugin {name} ({path}): {why}"
                log.error("plugins: {error}", error=record.error)
                raise PluginError(record.error)
            record.state, record.error = SKIPPED, f"{path} is not a plugin: {why}"
            log.info("plugins: {file} skipped: {why}", file=str(path), why=why)
            raise PluginError(record.error)
        record.class_name = getattr(cls, "__name__", str(cls))
        return self._run(record, cls)

    def _plugin_class(self, module: ModuleType, name: str) -> tuple[Any, str, bool]:
        """The class to run, or None, why not and whether that is an error (not a mere skip)."""
        named = getattr(module, "UCS_PLUGIN", None)
        source = "UCS_PLUGIN"
        if named is None and name in self.classes:
            named, source = self.classes[name], f"[plugins] classes.{name}"
        if named is not None:
            if not isinstance(named, str):
                return None, f"{source} is {named!r}; it must be the name of a class in the file", True
            cls = getattr(module, named, None)
            if cls is None or not callable(cls):
                return None, f"{source} names {named!r}, which the file does not define", True
            return cls, "", False
        # Seed 000 (v2.4.0): "If the variable is not in the file, then it is skipped" -- a
        # helper module is never instantiated by guesswork.  The skip says which class to name.
        candidates = [
            obj for key, obj in vars(module).items()
            if isinstance(obj, type) and obj.__module__ == module.__name__ and not key.startswith("_")
            and callable(getattr(obj, "stop", None)) and _takes_ucs(obj)
        ]
        if len(candidates) == 1:
            cls = candidates[0].__name__
            return None, (f"no UCS_PLUGIN (seed 000: such a file is skipped); to run its class {cls}, "
                          f"add UCS_PLUGIN = \"{cls}\" to the file or set [plugins] classes.{name} = "
                          f"\"{cls}\""), False
        if not candidates:
            return None, "no UCS_PLUGIN (seed 000: such a file is skipped, a helper module say)", False
        names = ", ".join(c.__name__ for c in candidates)
        return None, (f"no UCS_PLUGIN (seed 000: such a file is skipped); to run one of its classes ({names}), "
                      f"set UCS_PLUGIN or [plugins] classes.{name}"), False

    def _load_package(self, provider: Any) -> PluginRecord:
        name = provider.name
        existing = self._records.get(name)
        if existing is not None and existing.kind == FILE:
            raise PluginError(f"packaged plugin {provider!r} is named {name}, like the file {existing.origin}")
        kept = existing is not None and existing.state == RUNNING
        record = existing or PluginRecord(name, PACKAGE, repr(provider))
        if kept:
            try:
                provider.reload()
            except Exception as e:
                raise self._fail(record, "reload its code", e, kept=True) from None
            assert existing is not None
            self._stop(existing, "reload")
        record = self._record(name, PACKAGE, repr(provider))
        record.provider, record.module = provider, None
        record.class_name = getattr(provider, "factory", "") or type(provider).__name__
        return self._run(record, provider.create)

    def _run(self, record: PluginRecord, factory: Any) -> PluginRecord:
        facade = UCS(self.context, record.name)
        record.facade, record.instance, record.error = facade, None, ""
        try:
            record.instance = facade._timed("constructor", factory)(facade)
        except Exception as e:
            self._discard(record)
            raise self._failed_run(record, "construct", e) from None
        start = getattr(record.instance, "start", None)
        if callable(start):
            try:
                facade._timed("start()", start)()
            except Exception as e:
                self._call_stop(record)
                self._discard(record)
                raise self._failed_run(record, "start", e) from None
        record.state = RUNNING
        record.loaded_at = self.context.reactor.seconds()
        log.info("plugin {plugin} started ({kind} {origin}, class {cls})",
                 plugin=record.name, kind=record.kind, origin=record.origin, cls=record.class_name)
        return record

    def _failed_run(self, record: PluginRecord, stage: str, e: Exception) -> PluginError:
        error = self._fail(record, stage, e)
        record.instance = None
        if record.kind == FILE and record.module is not None:
            importer.forget(Path(record.origin), record.module)
        record.module = None
        return error

    # --- stopping ------------------------------------------------------------------------

    def _call_stop(self, record: PluginRecord) -> None:
        stop = getattr(record.instance, "stop", None)
        if callable(stop) and record.facade is not None:
            try:
                record.facade._timed("stop()", stop)()
            except Exception:
                log.failure("plugin {plugin} ({origin}): stop() failed", plugin=record.name, origin=record.origin)

    def _discard(self, record: PluginRecord) -> None:
        """Remove what the plugin left registered."""
        if record.facade is None:
            return
        left = record.facade._close()
        if left:
            log.warn("plugin {plugin} left {what} registered when it stopped; removed (unregister them "
                     "in stop())", plugin=record.name, what=", ".join(left))

    def _stop(self, record: PluginRecord, why: str) -> None:
        self._call_stop(record)
        self._discard(record)
        record.state = STOPPED
        record.instance = None
        if record.kind == FILE and record.module is not None:
            importer.forget(Path(record.origin), record.module)
        record.module = None
        log.info("plugin {plugin} stopped ({why})", plugin=record.name, why=why)

