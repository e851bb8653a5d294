"""The API registry: every method UCS offers, in one place.

A method is a name (``agent.changeStatus``, ``config.users.edit``), an
argument schema, the role a caller needs and the session states it is
allowed in.  The WebSocket API, the Interaction Processor and plugins
(``ucs.api.config.users.get(sid, …)``) all call through :meth:`Registry.call`,
so validation, permissions and plugin middleware apply everywhere, once.

Beyond the role, a method that names an agent or a call (``acts_on``) is
scoped: a supervisor acts on the agents of their queues and teams, an agent on
themself and on the calls of their phone (:mod:`ucs.api.scope`); a method that
returns agents (``shows``) returns those the caller may see.  The registry
checks the scope before middleware and handler run, so every way in gets it.

Handlers are called ``handler(session, *args)`` with the arguments in the
order of the schema, already checked; they return a value, a Deferred or a
coroutine.  :meth:`Registry.call` always returns a Deferred.

Middleware (seed 000, "API middleware"): ``mw(handler, session, *args)``;
it may change the arguments, must call ``handler`` (or raise) and may change
its result.  Several may be registered for one method: the one added first is
the outermost, so it sees the call first and the result last.  When the
method is asynchronous, the result a middleware gets from ``handler`` is a
Deferred; it may return it as is or add a callback to it.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred, ensureDeferred, fail, maybeDeferred, succeed

from ucs.api.scope import ActsOn, Scope, Subject
from ucs.constants import Role, SessionState
from ucs.error import InvalidDataInput, InvalidState, MethodNotFound, PermissionDenied

_MISSING = object()

#: What each Python type is called in error messages.
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               dict: "an object", list: "a list"}


class Caller(Protocol):
    """What the registry needs of a session."""

    @property
    def role(self) -> Role: ...

    @property
    def state(self) -> SessionState: ...


class Forward(Protocol):
    """Issue 20: where a cluster's standby sends the methods the AMI owner carries out."""

    def wants(self, name: str) -> bool: ...
    def call(self, session: Any, name: str, args: list[Any]) -> Deferred[Any]: ...


@attrs.define(frozen=True)
class Param:
    """One argument.  ``type`` is checked (an int is not a bool, a float accepts an
    int); ``check`` may convert the value or raise ``ValueError`` with what is
    accepted."""

    name: str
    type: type | tuple[type, ...] = str
    required: bool = True
    default: Any = None
    check: Callable[[Any], Any] | None = None
    nullable: bool = False
    doc: str = ""

    def accepted(self) -> str:
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        text = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
        return text + (" or null" if self.nullable else "")

    def validate(self, value: Any) -> Any:
        if value is None and (self.nullable or not self.required):
            return None if self.nullable else self.default
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        ok = any(
            isinstance(value, t) and not (t is int and isinstance(value, bool))
            or (t is float and isinstance(value, int) and not isinstance(value, bool))
            for t in types
        )
        if not ok:
            raise InvalidDataInput({self.name: f"{value!r} is not accepted; give {self.accepted()}"})
        if self.check is not None:
            try:
                value = self.check(value)
            except ValueError as e:
                raise InvalidDataInput({self.name: str(e)}) from None
        return value


@attrs.define(eq=False)
class Method:
    name: str
    handler: Callable[..., Any]
    params: tuple[Param, ...] = ()
    role: Role = Role.AGENT
    #: Session states the method may be called in; ``None`` for any.
    states: frozenset[SessionState] | None = None
    doc: str = ""
    middleware: list[Callable[..., Any]] = attrs.Factory(list)
    #: The argument naming the agent or call the method acts on (scoped), if any.
    acts_on: ActsOn | None = None
    #: The method returns a list of users/agents, filtered to those the caller may see.
    shows: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.name,
            "role": self.role.name.lower(),
            "states": sorted(s.value for s in self.states) if self.states is not None else None,
            "acts_on": self.acts_on.subject.value if self.acts_on is not None else None,
            "params": [
                {"name": p.name, "type": p.accepted(), "required": p.required, "doc": p.doc}
                for p in self.params
            ],
            "doc": self.doc,
        }

    def bind(self, args: Sequence[Any] | Mapping[str, Any] | None) -> list[Any]:
        """Arguments, positional or by name, checked and in schema order."""
        if args is None:
            args = ()
        if isinstance(args, Mapping):
            unknown = [k for k in args if k not in {p.name for p in self.params}]
            if unknown:
                names = ", ".join(p.name for p in self.params) or "none"
                raise InvalidDataInput({k: f"{self.name} has no argument {k!r}; it takes: {names}" for k in unknown})
            values = [args.get(p.name, _MISSING) for p in self.params]
        else:
            if len(args) > len(self.params):
                raise InvalidDataInput(
                    f"{self.name} takes at most {len(self.params)} arguments "
                    f"({', '.join(p.name for p in self.params) or 'none'}), not {len(args)}"
                )
            values = list(args) + [_MISSING] * (len(self.params) - len(args))
        out: list[Any] = []
        problems: dict[str, str] = {}
        for p, v in zip(self.params, values):
            if v is _MISSING:
                if p.required:
                    problems[p.name] = f"is required ({p.accepted()})"
                    continue
                out.append(p.default)
                continue
            try:
                out.append(p.validate(v))
            except InvalidDataInput as e:
                problems.update(e.message if isinstance(e.message, dict) else {p.name: str(e)})
        if problems:
            raise InvalidDataInput(problems)
        return out


class Registry:
    def __init__(self, scope: Scope | None = None) -> None:
        self._methods: dict[str, Method] = {}
        #: Who may act on what; the modules registering scoped methods give it their services.
        self.scope = scope if scope is not None else Scope()
        #: Issue 20 (cluster hook, :class:`ucs.cluster.forward.Forwarder`): on a standby, the
        #: methods whose work is the AMI owner's run there; ``None`` outside a cluster.
        self.forward: Forward | None = None

    # -- registration ---------------------------------------------------------

    def add(
        self,
        name: str,
        handler: Callable[..., Any],
        params: Iterable[Param] = (),
        *,
        role: Role = Role.AGENT,
        states: Iterable[SessionState] | None = None,
        doc: str = "",
        acts_on: ActsOn | None = None,
        shows: bool = False,
    ) -> Method:
        """Add a method.  ``acts_on`` names the argument holding the agent (user id)
        or call (uniqueid) it acts on, which the caller's scope must cover;
        ``shows``: it returns users or agents (dicts with ``id``), of which the
        caller gets those in their scope."""
        schema = tuple(params)
        if name in self._methods:
            raise ValueError(f"API method {name} is registered twice")
        if acts_on is not None and acts_on.param not in {p.name for p in schema}:
            raise ValueError(f"API method {name} acts on its argument {acts_on.param!r}, which it does not have")
        doc = doc or inspect.getdoc(handler) or ""
        if inspect.iscoroutinefunction(handler):
            handler = _deferring(handler)
        method = Method(
            name, handler, schema, role,
            frozenset(states) if states is not None else None,
            doc, acts_on=acts_on, shows=shows,
        )
        self._methods[name] = method
        return method

    def remove(self, name: str) -> None:
        self._methods.pop(name, None)

    def get(self, name: str) -> Method:
        method = self._methods.get(name) if isinstance(name, str) else None
        if method is None:
            close = difflib.get_close_matches(str(name), self._methods, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see the method list (api.methods)"
            raise MethodNotFound(f"there is no API method {name!r}{hint}")
        return method

    def names(self) -> list[str]:
        return sorted(self._methods)

    def __contains__(self, name: object) -> bool:
        return name in self._methods

    # -- middleware (seed 000) ------------------------------------------------------

    def add_middleware(self, name: str, mw: Callable[..., Any]) -> None:
        if not callable(mw):
            raise InvalidDataInput(f"middleware for {name} must be callable, not {type(mw).__name__}")
        self.get(name).middleware.append(mw)

    def remove_middleware(self, name: str, mw: Callable[..., Any]) -> bool:
        chain = self.get(name).middleware
        if mw in chain:
            chain.remove(mw)
            return True
        return False

    # -- calling ----------------------------------------------------------------------

    def check(self, session: Caller, method: Method) -> None:
        if session.role < method.role:
            raise PermissionDenied(
                f"{method.name} needs the {method.role.name.lower()} role; "
                f"this session has {session.role.name.lower()}"
            )
        if method.states is not None and session.state not in method.states:
            allowed = ", ".join(sorted(s.value for s in method.states))
            needs_phone = (session.state in (SessionState.IDENTIFY, SessionState.DEVICE)
                           and SessionState.READY in method.states)
            raise InvalidState(
                f"{method.name} is allowed in {allowed}; this session is in {session.state.value}"
                + ("; it needs a phone: choose one first (identifier, then provision)" if needs_phone else "")
            )

    def call(
        self, session: Caller, name: str, args: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> Deferred[Any]:
        """Check and run one API call; the Deferred fails with a :class:`ucs.error.UCSError`
        saying what was wrong (or with whatever the handler raised)."""
        return maybeDeferred(self._call, session, name, args).addCallback(_settle)

    def authorize(self, session: Caller, subject: Subject, value: Any, what: str) -> Deferred[None]:
        """The scope check of :meth:`call` for a request that is not a registry
        method (the Interaction Processor's reports): fails with
        :class:`PermissionDenied` unless ``session`` may act on the agent (a user
        id) or call (a uniqueid) ``value``."""
        try:
            gate = self._authorize(session, subject, value, what)
        except Exception:
            return fail()
        return gate if gate is not None else succeed(None)

    def _authorize(self, session: Caller, subject: Subject, value: Any, what: str) -> Deferred[None] | None:
        if subject is Subject.AGENT:
            self.scope.check_agent(session, value, what)
            return None
        return self.scope.check_call(session, value, what)

    def _call(self, session: Caller, name: str, args: Any) -> Any:
        method = self.get(name)
        self.check(session, method)
        positional = method.bind(args)
        if self.forward is not None and self.forward.wants(method.name):  # issue 20: the owner's work
            return self._forwarded(session, method, positional)
        if method.acts_on is None:
            return self._run(session, method, positional)
        index = [p.name for p in method.params].index(method.acts_on.param)
        gate = self._authorize(session, method.acts_on.subject, positional[index], method.name)
        if gate is None:
            return self._run(session, method, positional)

        def granted(_: None) -> Any:
            # The session may have logged out or left READY while the CDR was read.
            self.check(session, method)
            return self._run(session, method, positional)

        return gate.addCallback(granted)

    def _forwarded(self, session: Caller, method: Method, positional: list[Any]) -> Any:
        """Issue 20: checked here (the agent it names in the caller's scope; a *call*'s scope
        needs the live calls, so the owner checks it), carried out by the AMI owner."""
        forward = self.forward
        assert forward is not None
        if method.acts_on is not None and method.acts_on.subject is Subject.AGENT:
            index = [p.name for p in method.params].index(method.acts_on.param)
            self.scope.check_agent(session, positional[index], method.name)
        return self._run(session, method, positional,
                         lambda s, *args: forward.call(s, method.name, list(args)))

    def _run(self, session: Caller, method: Method, positional: list[Any],
             inner: Callable[..., Any] | None = None) -> Any:
        handler: Callable[..., Any] = inner if inner is not None else method.handler
        for mw in reversed(method.middleware):
            handler = _wrap(mw, handler)
        result = handler(session, *positional)
        if not method.shows:
            return result
        if inspect.iscoroutine(result):
            result = ensureDeferred(result)
        if isinstance(result, Deferred):
            return result.addCallback(lambda r: self.scope.visible(session, r))
        return self.scope.visible(session, result)


def _deferring(f: Callable[..., Any]) -> Callable[..., Deferred[Any]]:
    """An ``async def`` handler as a function returning a Deferred, so that
    middleware always gets a value or a Deferred from ``handler(...)``."""

    def call(*args: Any) -> Deferred[Any]:
        return Deferred.fromCoroutine(f(*args))

    call.__name__ = getattr(f, "__name__", "handler")
    return call


def _wrap(mw: Callable[..., Any], inner: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        return mw(inner, *args)

    return call


def _settle(result: Any) -> Any:
    if inspect.iscoroutine(result):
        return ensureDeferred(result)
    return result
