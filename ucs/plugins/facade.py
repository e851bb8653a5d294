"""The ``ucs`` object a plugin gets: seed 000's documented surface, nothing more.

Each plugin gets a facade of its own (:class:`UCS`), so that its log lines
carry its name and UCS knows what it registered: what the plugin leaves
registered when it is stopped is removed then (with a warning), so an
unloaded plugin is never called again.

Every hook a plugin registers is timed: one that runs longer than the
budget (``[plugins] hook_budget``) on the reactor thread is logged with the
plugin's name, the hook and the time it took.

Threads: the facade may be used from any thread.  A call from a thread that
is not the reactor's runs on the reactor (``blockingCallFromThread``) and
returns its result — the value itself where the reactor thread would get a
Deferred; log lines from threads are handed to the reactor without waiting.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.threads import blockingCallFromThread
from twisted.logger import Logger, LogLevel
from twisted.python import threadable
from twisted.python.failure import Failure

from ucs.error import InvalidDataInput, NotFound, ProcessingError

P = ParamSpec("P")
T = TypeVar("T")

log = Logger(namespace="ucs.plugins")


# --- what the facade needs of the rest of UCS ------------------------------------------


class AgentsService(Protocol):
    def all(self) -> list[Any]: ...
    def add_change_status_hook(self, hook: Callable[..., Any]) -> None: ...
    def remove_change_status_hook(self) -> None: ...


class CallControl(Protocol):
    def set_metadata_transformer(self, fn: Callable[[str, dict[str, Any]], None]) -> None: ...
    def unset_metadata_transformer(self) -> None: ...


@attrs.define(eq=False)
class SlowHooks:
    """A plugin's hooks that went over the budget."""

    count: int = 0
    slowest: float = 0.0
    slowest_hook: str = ""


@attrs.define(eq=False)
class PluginContext:
    """The parts of UCS the facades reach; any may be ``None`` until that part exists
    (then the facade says so with ``ProcessingError``)."""

    reactor: Any
    bus: Any = None            # ucs.bus.EventBus
    registry: Any = None       # ucs.api.registry.Registry
    sessions: Any = None       # ucs.api.session.SessionManager
    directory: Any = None      # ucs.directory.directory.Directory
    agents: Any = None         # the agents service (AgentsService, plus the agents list)
    call_control: Any = None   # the call-control service (CallControl)
    shared: Any = None         # ucs.plugins.shared.SharedData
    lookups: Any = None        # ucs.lookup.LookupService
    #: Seconds a hook may run on the reactor thread before it is logged as slow.
    budget: float = 0.05
    #: What hooks are timed with (a test gives a fake).
    timer: Callable[[], float] = time.perf_counter
    #: Which plugin holds each one-at-a-time hook ("status", "metadata").
    holders: dict[str, str] = attrs.Factory(dict)
    #: Told ``(plugin, hook, seconds)`` after each hook runs, on the thread it ran on (metrics).
    observe_hook: Callable[[str, str, float], None] | None = None

    def in_reactor_thread(self) -> bool:
        io = threadable.ioThread
        if io is None:
            io = threading.main_thread().ident
        return threading.get_ident() == io


def _on_reactor(method: Callable[P, T]) -> Callable[P, T]:
    """Run ``method`` on the reactor thread (from another thread: wait for its result)."""

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        ctx: PluginContext = args[0]._ctx  # type: ignore[attr-defined]
        if ctx.in_reactor_thread():
            return method(*args, **kwargs)
        return blockingCallFromThread(ctx.reactor, method, *args, **kwargs)

    return call  # type: ignore[return-value]


def _need(value: Any, what: str) -> Any:
    if value is None:
        raise ProcessingError(f"{what} is not available in this UCS")
    return value


# --- ucs.log -------------------------------------------------------------------------------


class PluginLog:
    """Seed 000's log: ``dev``, ``dbug``, ``info``, ``warn``, ``error``, with
    printf-style arguments (``log.dbug('User %d', uid)``), into twisted.logger
    under the namespace ``ucs.plugin.<name>``.  ``dev`` and ``dbug`` are both
    debug level; ``dev`` lines carry ``ucs_level="dev"``."""

    #: Lines from the plugin's own threads waiting for the reactor thread to log
    #: them; a thread logging faster than that loses its oldest lines (counted
    #: and reported) instead of growing the reactor's queue without end.
    THREAD_BUFFER = 1000

    def __init__(self, ctx: PluginContext, plugin: str) -> None:
        self._ctx = ctx
        self._plugin = plugin
        self._logger = Logger(namespace=f"ucs.plugin.{plugin}")
        self._lock = threading.Lock()
        self._from_threads: deque[tuple[LogLevel, dict[str, Any]]] = deque(maxlen=self.THREAD_BUFFER)
        self._dropped = 0
        self._drain_scheduled = False

    @staticmethod
    def _text(msg: Any, args: tuple[Any, ...]) -> str:
        text = str(msg)
        if args:
            try:
                text = text % args
            except (TypeError, ValueError, KeyError):
                text = f"{text} {args!r}"
        return text

    def _emit(self, level: LogLevel, tag: str, msg: Any, args: tuple[Any, ...], failure: Failure | None = None) -> None:
        fields: dict[str, Any] = {"text": self._text(msg, args), "ucs_plugin": self._plugin, "ucs_level": tag}
        if failure is not None:
            fields["log_failure"] = failure
        if self._ctx.in_reactor_thread():
            self._logger.emit(level, "{text}", **fields)
            return
        with self._lock:
            if len(self._from_threads) == self.THREAD_BUFFER:
                self._dropped += 1
            self._from_threads.append((level, fields))
            if self._drain_scheduled:
                return
            self._drain_scheduled = True
        self._ctx.reactor.callFromThread(self._drain)

    def _drain(self) -> None:
        """On the reactor thread: log what the plugin's threads handed over."""
        with self._lock:
            lines = list(self._from_threads)
            self._from_threads.clear()
            dropped, self._dropped = self._dropped, 0
            self._drain_scheduled = False
        if dropped:
            self._logger.warn("plugin {plugin}: {dropped} log lines from its threads were dropped: they came "
                              "faster than UCS writes its log", plugin=self._plugin, dropped=dropped,
                              ucs_plugin=self._plugin, ucs_level="warn")
        for level, fields in lines:
            self._logger.emit(level, "{text}", **fields)

    def dev(self, msg: Any, *args: Any) -> None:
        self._emit(LogLevel.debug, "dev", msg, args)

    def dbug(self, msg: Any, *args: Any) -> None:
        self._emit(LogLevel.debug, "dbug", msg, args)

    def info(self, msg: Any, *args: Any) -> None:
        self._emit(LogLevel.info, "info", msg, args)

    def warn(self, msg: Any, *args: Any) -> None:
        self._emit(LogLevel.warn, "warn", msg, args)

    def error(self, msg: Any, *args: Any) -> None:
        self._emit(LogLevel.error, "error", msg, args)

    def exception(self, msg: Any, *args: Any) -> None:
        """``error`` with the exception being handled and its traceback."""
        self._emit(LogLevel.error, "error", msg, args, Failure())

    debug = dbug
    warning = warn


# --- ucs.agents ------------------------------------------------------------------------


class AgentsFacade:
    def __init__(self, ucs: UCS) -> None:
        self._ucs = ucs
        self._ctx = ucs._ctx

    @_on_reactor
    def getAgents(self) -> list[Any]:
        """Every agent (``agent['status']`` and ``agent.status`` both work)."""
        agents = _need(self._ctx.agents, "the agents service")
        return list(agents.all())

    @_on_reactor
    def addChangeStatusHook(self, hook: Callable[[Any, int, str], Any]) -> None:
        """Seed 000 (v2.4.0): one plugin at a time; a second gets ProcessingError."""
        agents: AgentsService = _need(self._ctx.agents, "the agents service")
        self._ucs._check_open()
        holder = self._ctx.holders.get("status")
        if holder is not None and holder != self._ucs.name:
            raise ProcessingError(f"the agent status change hook is already registered by plugin {holder}; "
                                  "only one plugin may use it")
        agents.add_change_status_hook(self._ucs._timed("agent status change hook", hook))
        self._ctx.holders["status"] = self._ucs.name

    @_on_reactor
    def removeChangeStatusHook(self) -> None:
        agents: AgentsService = _need(self._ctx.agents, "the agents service")
        if self._ctx.holders.get("status") == self._ucs.name:
            agents.remove_change_status_hook()
            del self._ctx.holders["status"]

    @_on_reactor
    def removeChangeHook(self, identifier: str) -> None:
        """Seed 000's text names ``ucs.agents.removeChangeHook(identifier)`` for the shared data
        hook (its example uses ``ucs.shared.removeChangeHook``): both work."""
        self._ucs.shared.removeChangeHook(identifier)


# --- ucs.shared ------------------------------------------------------------------------


class SharedFacade:
    """Shared data: ``get(identifier)``, ``set(identifier, data)`` and the change hook."""

    def __init__(self, ucs: UCS) -> None:
        self._ucs = ucs
        self._ctx = ucs._ctx
        self._hooks: set[str] = set()

    def _shared(self) -> Any:
        return _need(self._ctx.shared, "shared data")

    @_on_reactor
    def get(self, identifier: str) -> Any:
        return self._shared().get(identifier)

    @_on_reactor
    def set(self, identifier: str, data: Any) -> Any:
        """Through the change hook, like the API's ``shared.set``: a Deferred on the
        reactor thread, the stored value from another thread."""
        result: Deferred[Any] = self._shared().set(identifier, data)
        return result

    @_on_reactor
    def addChangeHook(self, identifier: str, hook: Callable[[str, Any, Any], Any]) -> None:
        self._ucs._check_open()
        self._shared().add_change_hook(identifier, self._ucs._timed(f"shared data hook {identifier!r}", hook),
                                       owner=self._ucs.name)
        self._hooks.add(identifier)

    @_on_reactor
    def removeChangeHook(self, identifier: str) -> None:
        self._shared().remove_change_hook(identifier, owner=self._ucs.name)
        self._hooks.discard(identifier)


# --- ucs.api ---------------------------------------------------------------------------


class APIFacade:
    """``ucs.api.<method path>(sid, *args)`` calls API method ``<method path>``
    (``ucs.api.config.users.get(sid, 3)``) as the session ``sid`` through the
    registry — middleware and permissions apply.  Arguments are positional, or
    all by name.  ``ucs.sid`` is the plugin's own (superuser) session."""

    def __init__(self, ucs: UCS, path: tuple[str, ...] = ()) -> None:
        self._ucs = ucs
        self._ctx = ucs._ctx
        self._path = path

    def __getattr__(self, name: str) -> APIFacade:
        if name.startswith("_"):
            raise AttributeError(name)
        if not self._path and name == "cdr":
            return CDRFacade(self._ucs, ("cdr",))
        return APIFacade(self._ucs, (*self._path, name))

    def __repr__(self) -> str:
        return f"<ucs.api {'.'.join(self._path) or '(root)'}>"

    @_on_reactor
    def __call__(self, sid: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._path:
            raise TypeError("call an API method: ucs.api.<method path>(sid, ...)")
        if args and kwargs:
            raise InvalidDataInput("give the arguments either all positional or all by name")
        registry = _need(self._ctx.registry, "the API")
        session = self._ucs._session_for(sid)
        result: Deferred[Any] = registry.call(session, ".".join(self._path), kwargs if kwargs else list(args))
        return result

    # seed 000 (v3.8.0)

    @_on_reactor
    def addMiddleware(self, method: str, middleware: Callable[..., Any]) -> None:
        """Several per method: the one added first runs first (outermost)."""
        self._ucs._check_open()
        registry = _need(self._ctx.registry, "the API")
        registry.get(method)  # MethodNotFound before anything is kept
        if not callable(middleware):
            raise InvalidDataInput(f"middleware for {method} must be callable, not {type(middleware).__name__}")
        wrapper = self._ucs._timed_middleware(method, middleware)
        registry.add_middleware(method, wrapper)
        self._ucs._middleware.append((method, middleware, wrapper))

    @_on_reactor
    def removeMiddleware(self, method: str, middleware: Callable[..., Any]) -> bool:
        registry = _need(self._ctx.registry, "the API")
        for entry in self._ucs._middleware:
            if entry[0] == method and entry[1] == middleware:
                self._ucs._middleware.remove(entry)
                return bool(registry.remove_middleware(method, entry[2]))
        return False


class CDRFacade(APIFacade):
    """``ucs.api.cdr``: API methods ``cdr.*`` and seed 000's metadata transformer (v4.38.0)."""

    @_on_reactor
    def set_metadata_transformer(self, fn: Callable[[str, dict[str, Any]], None]) -> None:
        self._ucs._check_open()
        control: CallControl = _need(self._ctx.call_control, "call control")
        holder = self._ctx.holders.get("metadata")
        if holder is not None and holder != self._ucs.name:
            raise ProcessingError(f"the CDR metadata transformer is already set by plugin {holder}; "
                                  "only one is allowed")
        control.set_metadata_transformer(self._ucs._timed("CDR metadata transformer", fn))
        self._ctx.holders["metadata"] = self._ucs.name

    @_on_reactor
    def unset_metadata_transformer(self) -> None:
        control: CallControl = _need(self._ctx.call_control, "call control")
        if self._ctx.holders.get("metadata") == self._ucs.name:
            control.unset_metadata_transformer()
            del self._ctx.holders["metadata"]


# --- ucs.tree --------------------------------------------------------------------------


class TreeFacade:
    """The directory as seed 000's ``ucs.tree``: ``getUsers(field)`` → ``{user_id: value}``
    (the field of seed 002's User object: ``username``, ``displayname``, ``email`` …;
    without a field, the whole object).  ``getGroups``, ``getTeams``, ``getQueues`` and
    ``getLines`` work the same way."""

    def __init__(self, ucs: UCS) -> None:
        self._ctx = ucs._ctx

    def _table(self, kind: str, field: str | None) -> dict[int, Any]:
        directory = _need(self._ctx.directory, "the directory")
        out: dict[int, Any] = {}
        for entity_id, entity in sorted(directory.table(kind).items()):
            doc = entity.to_dict()
            if field is None:
                out[entity_id] = doc
            elif field in doc:
                out[entity_id] = doc[field]
            else:
                raise InvalidDataInput({"field": f"{kind[:-1]} has no field {field!r}; "
                                                 f"fields: {', '.join(sorted(doc))}"})
        return out

    @_on_reactor
    def getUsers(self, field: str | None = None) -> dict[int, Any]:
        return self._table("users", field)

    @_on_reactor
    def getGroups(self, field: str | None = None) -> dict[int, Any]:
        return self._table("groups", field)

    @_on_reactor
    def getTeams(self, field: str | None = None) -> dict[int, Any]:
        return self._table("teams", field)

    @_on_reactor
    def getQueues(self, field: str | None = None) -> dict[int, Any]:
        return self._table("queues", field)

    @_on_reactor
    def getLines(self, field: str | None = None) -> dict[int, Any]:
        return self._table("lines", field)


# --- ucs.lookups -----------------------------------------------------------------------


class LookupsFacade:
    """Seed 000 (v4.39.0): ``set_lookup_transformer(fn)`` / ``unset_lookup_transformer()``;
    ``fn(lookup_id, number, data) -> data``; if it raises, the original data is used."""

    def __init__(self, ucs: UCS) -> None:
        self._ucs = ucs
        self._ctx = ucs._ctx

    @_on_reactor
    def set_lookup_transformer(self, fn: Callable[[int, str, dict[str, Any]], dict[str, Any]]) -> None:
        self._ucs._check_open()
        lookups = _need(self._ctx.lookups, "caller lookup")
        lookups.set_lookup_transformer(self._ucs._timed("lookup transformer", fn), owner=self._ucs.name)

    @_on_reactor
    def unset_lookup_transformer(self) -> None:
        lookups = _need(self._ctx.lookups, "caller lookup")
        lookups.unset_lookup_transformer(owner=self._ucs.name)

    @_on_reactor
    def lookup(self, number: str) -> Any:
        """What the sources (and the transformer) say of ``number``: a Deferred of
        ``{lookup_id, number, name, external_id, data}`` (the dict itself from a thread)."""
        lookups = _need(self._ctx.lookups, "caller lookup")
        d: Deferred[Any] = lookups.lookup(number).addCallback(lambda r: r.to_dict())
        return d


# --- the facade ------------------------------------------------------------------------


class UCS:
    """The ``ucs`` argument of a plugin's constructor.

    ``ucs.name`` is the plugin's name, ``ucs.sid`` its own superuser session for
    ``ucs.api.<method>(ucs.sid, ...)``.
    """

    def __init__(self, ctx: PluginContext, name: str) -> None:
        self._ctx = ctx
        self.name = name
        self.slow = SlowHooks()
        self._closed = False
        self._callbacks: list[tuple[str, Callable[..., Any], Callable[..., Any]]] = []
        self._middleware: list[tuple[str, Callable[..., Any], Callable[..., Any]]] = []
        self._session: Any = None
        if ctx.sessions is not None:
            self._session = ctx.sessions.system()
            self._session.kind = "plugin"
        self.log = PluginLog(ctx, name)
        self.agents = AgentsFacade(self)
        self.shared = SharedFacade(self)
        self.api = APIFacade(self)
        self.tree = TreeFacade(self)
        self.lookups = LookupsFacade(self)

    def __repr__(self) -> str:
        return f"<ucs facade for plugin {self.name}>"

    @property
    def sid(self) -> str | None:
        return self._session.sid if self._session is not None else None

    # seed 000 (v2.4.0): bus callbacks

    @_on_reactor
    def addCallback(self, event: str, fn: Callable[[Any, dict[str, Any]], Any]) -> None:
        """``fn(subject, args)`` on every ``event`` (``from events import EVENT_…``)."""
        self._check_open()
        bus = _need(self._ctx.bus, "the events bus")
        if not isinstance(event, str) or not event:
            raise InvalidDataInput(f"{event!r} is not an event; use the names in events (EVENT_…)")
        if not callable(fn):
            raise InvalidDataInput(f"the callback for {event} must be callable, not {type(fn).__name__}")
        wrapper = self._timed(f"callback for {event}", fn)
        bus.subscribe(event, wrapper)
        self._callbacks.append((event, fn, wrapper))

    @_on_reactor
    def removeCallback(self, event: str, fn: Callable[[Any, dict[str, Any]], Any]) -> bool:
        bus = _need(self._ctx.bus, "the events bus")
        for entry in self._callbacks:
            if entry[0] == event and entry[1] == fn:
                self._callbacks.remove(entry)
                return bool(bus.unsubscribe(event, entry[2]))
        return False

    # --- the host's side ---------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ProcessingError(f"plugin {self.name} is unloaded; it cannot register hooks any more")

    def _session_for(self, sid: Any) -> Any:
        if sid is None:
            sid = self.sid
        if not isinstance(sid, str):
            session = sid  # a Session object
            if not hasattr(session, "role"):
                raise InvalidDataInput(f"{sid!r} is not a session id")
            return session
        sessions = _need(self._ctx.sessions, "sessions")
        return sessions.get(sid)

    def _slow(self, what: str, seconds: float) -> None:
        self.slow.count += 1
        if seconds > self.slow.slowest:
            self.slow.slowest, self.slow.slowest_hook = seconds, what
        log.warn("plugin {plugin}: {hook} took {ms:.0f} ms on the reactor thread (budget {budget_ms:.0f} ms); "
                 "UCS did nothing else meanwhile: move slow work to a thread",
                 plugin=self.name, hook=what, ms=seconds * 1000, budget_ms=self._ctx.budget * 1000,
                 seconds=seconds)

    def _took(self, what: str, seconds: float) -> None:
        ctx = self._ctx
        if ctx.observe_hook is not None:
            ctx.observe_hook(self.name, what, seconds)
        if seconds > ctx.budget and ctx.in_reactor_thread():
            self._slow(what, seconds)

    def _timed(self, what: str, fn: Callable[P, T]) -> Callable[P, T]:
        ctx = self._ctx

        @functools.wraps(fn)
        def timed(*args: P.args, **kwargs: P.kwargs) -> T:
            start = ctx.timer()
            try:
                return fn(*args, **kwargs)
            finally:
                took = ctx.timer() - start
                self._took(what, took)

        return timed

    def _timed_middleware(self, method: str, mw: Callable[..., Any]) -> Callable[..., Any]:
        """Times the middleware itself, not the handler it calls (other middleware, the method)."""
        ctx = self._ctx

        def timed(handler: Callable[..., Any], *args: Any) -> Any:
            inner = 0.0

            def timed_handler(*a: Any, **kw: Any) -> Any:
                nonlocal inner
                start = ctx.timer()
                try:
                    return handler(*a, **kw)
                finally:
                    inner += ctx.timer() - start

            start = ctx.timer()
            try:
                return mw(timed_handler, *args)
            finally:
                self._took(f"middleware of {method}", ctx.timer() - start - inner)

        return timed

    def _close(self) -> list[str]:
        """Remove what the plugin left registered; says what that was."""
        self._closed = True
        left: list[str] = []
        ctx = self._ctx
        for event, fn, wrapper in self._callbacks:
            ctx.bus.unsubscribe(event, wrapper)
            left.append(f"callback {getattr(fn, '__name__', fn)!s} for {event}")
        self._callbacks.clear()
        for method, mw, wrapper in self._middleware:
            try:
                ctx.registry.remove_middleware(method, wrapper)
            except NotFound:
                pass
            left.append(f"middleware {getattr(mw, '__name__', mw)!s} of {method}")
        self._middleware.clear()
        for identifier in sorted(self.shared._hooks):
            if ctx.shared is not None and ctx.shared.remove_change_hook(identifier, owner=self.name):
                left.append(f"shared data hook for {identifier!r}")
        self.shared._hooks.clear()
        if ctx.holders.get("status") == self.name:
            del ctx.holders["status"]
            ctx.agents.remove_change_status_hook()
            left.append("agent status change hook")
        if ctx.holders.get("metadata") == self.name:
            del ctx.holders["metadata"]
            ctx.call_control.unset_metadata_transformer()
            left.append("CDR metadata transformer")
        if ctx.lookups is not None and ctx.lookups.unset_lookup_transformer(owner=self.name):
            left.append("lookup transformer")
        if self._session is not None and ctx.sessions is not None:
            ctx.sessions.close(self._session, "plugin unloaded")
            self._session = None
        return left
