"""The directory: users, groups, teams, queues, lines, AUX and call reasons.

Held in memory (the agent bar, the agents and the call tracker read it on
every event) and written through to the store before a change is reported
done: ``add``/``edit``/``delete`` validate, persist, then apply and publish
``EVENT_USER_CHANGE`` / ``EVENT_CONFIG_CHANGE``.  With an ``audit`` writer (the
store), each change -- and each user a deletion edits in passing -- is also
written to the audit log (who: ``actor``, through what: ``source``, the
entity before and after, never a password hash).  Each entity is one JSON
document in the store's key-value table (namespace ``dir.<kind>``), so both
back ends share one schema; the document's ``rev`` counts its writes, and an
edit or deletion is written only over the revision this node read (another UCS
node's edit meanwhile: read again, planned again over it -- :meth:`Directory.apply`).
A change and its audit entries are written in one transaction
(``kv_write(..., audit=...)``): a failure of either keeps neither, and nothing
changes in memory or on the bus unless both are stored.

Every change is a batch (:meth:`Directory.apply`; ``add``/``edit``/``delete`` are
batches of one step): under the directory's lock, the steps are checked in order
on a draft (the tables copied, so a step sees what the steps before it did and the
live directory is not touched), then written in ONE transaction with all their
audit entries, then applied in memory and published.  An import (all its rows)
and a queue's members (:meth:`Directory.set_members`) are such batches, so they
are never left half done.

Passwords are argon2id hashes, computed and checked in a thread: a hash
costs tens of milliseconds, which the reactor must never spend.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import attrs
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from twisted.internet.defer import Deferred, DeferredLock, gatherResults
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from ucs.bus import EventBus
from ucs.directory import claims, validate
from ucs.directory.model import (
    AuxReason, CallReason, Group, Line, Queue, QueueMembership, Team, User,
)
from ucs.error import InvalidDataInput, NotFound, ProcessingError, UCSError
from ucs.events import EVENT_CONFIG_CHANGE, EVENT_USER_CHANGE
from ucs.interfaces import KVStore
from ucs.store.base import KV_DELETE, KVExpect, KVNew, kv_rev
from ucs.store.errors import Changed, KeyTaken


class AuditWriter(Protocol):
    """Writes documents with the audit entries that record them, in one transaction:
    the store (:meth:`ucs.store.Store.kv_write`)."""

    def kv_write(self, items: list[tuple[str, str, Any]], *,
                 audit: list[dict[str, Any]] = ...) -> Deferred[None]: ...

#: The kinds of entity, as named in the API (``config.<kind>.…``).
KINDS: dict[str, type] = {
    "users": User, "groups": Group, "teams": Team, "queues": Queue, "lines": Line,
    "auxreasons": AuxReason, "callreasons": CallReason,
}


def _to_doc(entity: Any) -> dict[str, Any]:
    doc = attrs.asdict(entity, recurse=True)
    if isinstance(entity, User):
        doc["queues"] = {str(k): v for k, v in doc["queues"].items()}
    return doc


def audit_doc(entity: Any) -> dict[str, Any]:
    """An entity as the audit log keeps it: its stored document, a user's password
    hash replaced by whether there is a password."""
    doc = _to_doc(entity)
    if "password_hash" in doc:
        doc["password"] = "set" if doc.pop("password_hash") else ""
    return doc


def _from_doc(kind: str, doc: dict[str, Any]) -> Any:
    cls = KINDS[kind]
    if cls is User:
        doc = dict(doc)
        doc["queues"] = {
            int(k): v if isinstance(v, QueueMembership) else QueueMembership(**v)
            for k, v in doc.get("queues", {}).items()
        }
    names = {a.name for a in attrs.fields(cls)}
    return cls(**{k: v for k, v in doc.items() if k in names})


#: Batches longer than this are checked in a thread: each step's uniqueness checks
#: look at the whole table, which for thousands of rows the reactor must not spend.
_INLINE_STEPS = 20
#: How many times a change computed from the directory is computed again when the
#: directory changed meanwhile (:class:`Stale`).
_ATTEMPTS = 3
#: A new password's hash while the steps are checked (hashed, in a thread, after).
_UNHASHED = "(being hashed)"


@attrs.frozen
class Step:
    """One change of a batch (:meth:`Directory.apply`): ``add`` (``data``), ``edit``
    (``entity_id`` and the fields to change in ``data``) or ``delete`` (``entity_id``).
    ``label`` names it in a refusal (``users.csv line 4``, ``user 7``); without one the
    step's own error is raised as it is (a single change)."""

    kind: str
    action: str
    data: Any = None
    entity_id: int | None = None
    label: str | None = None


class StepRefused(InvalidDataInput):
    """A step of a batch was refused: nothing of the batch was done.

    ``index`` and ``label`` say which step, ``fields`` field → what is wrong (as the step
    alone would have been refused); the message names the step in each field."""

    def __init__(self, index: int, label: str, cause: UCSError) -> None:
        message = cause.message
        self.fields: dict[str, str] = ({str(k): str(v) for k, v in message.items()} if isinstance(message, dict)
                                       else {"-": str(cause)})
        super().__init__({(label if k == "-" else f"{label}, {k}"): v for k, v in self.fields.items()})
        self.index = index
        self.label = label
        self.cause = cause


class Stale(ProcessingError):
    """The directory changed since the revision a batch was computed on: compute it again."""


class _Draft:
    """The directory as a batch's steps leave it, while they are checked: the tables
    copied (the entities shared until a step replaces one), never the live ones.
    ``gone``: entities another UCS node deleted while this batch was being written (a
    step on one is refused saying so)."""

    def __init__(self, directory: Directory, gone: frozenset[tuple[str, int]] = frozenset()) -> None:
        self.gone = gone
        self.tables: dict[str, dict[int, Any]] = {kind: dict(directory.table(kind)) for kind in KINDS}
        self.next_id = dict(directory._next_id)
        self.users: dict[int, User] = self.tables["users"]
        self.lines: dict[int, Line] = self.tables["lines"]
        self.callreasons: dict[int, CallReason] = self.tables["callreasons"]

    def table(self, kind: str) -> dict[int, Any]:
        if kind not in KINDS:
            raise NotFound(f"there is no directory kind {kind!r}; kinds: {', '.join(KINDS)}")
        return self.tables[kind]

    def entity(self, kind: str, entity_id: int) -> Any:
        found = self.table(kind).get(entity_id)
        if found is None:
            if (kind, entity_id) in self.gone:
                raise NotFound(f"{kind[:-1]} {entity_id} was deleted (on another UCS node) while this change "
                               "was being made; nothing was changed")
            raise NotFound(f"{kind[:-1]} {entity_id} does not exist")
        return found


class _Conflict(Exception):
    """A batch's write found an entity it edits or deletes changed in the store since this
    node read it (:class:`~ucs.store.errors.Changed`); ``ids``: kind → the entities of the
    batch that were written over what this node had read (read again before planning anew)."""

    def __init__(self, changed: Changed, ids: dict[str, set[int]]) -> None:
        super().__init__(str(changed))
        self.changed = changed
        self.ids = ids


@attrs.define
class _Plan:
    """What a batch does: documents by (kind, id) (``None``: deleted), audit entries,
    passwords to hash, events to publish and each step's entity, in order."""

    next_id: dict[str, int]
    final: dict[tuple[str, int], Any] = attrs.Factory(dict)
    entries: list[dict[str, Any]] = attrs.Factory(list)
    passwords: dict[tuple[str, int], str] = attrs.Factory(dict)
    events: list[tuple[str, str, int]] = attrs.Factory(list)
    results: list[tuple[str, int]] = attrs.Factory(list)


class Directory:
    log = Logger()

    def __init__(self, store: KVStore, bus: EventBus | None = None, hasher: PasswordHasher | None = None,
                 *, audit: AuditWriter | None = None) -> None:
        self._store = store
        self._audit = audit
        self._bus = bus
        self._hasher = hasher or PasswordHasher()
        self._lock = DeferredLock()  # one change at a time: ids and uniqueness stay consistent
        self.users: dict[int, User] = {}
        self.groups: dict[int, Group] = {}
        self.teams: dict[int, Team] = {}
        self.queues: dict[int, Queue] = {}
        self.lines: dict[int, Line] = {}
        self.auxreasons: dict[int, AuxReason] = {}
        self.callreasons: dict[int, CallReason] = {}
        self._next_id: dict[str, int] = {kind: 1 for kind in KINDS}
        #: (kind, id) → the revision of the entity's stored document this node last read or
        #: wrote (``rev`` in the document; 0 for one stored before revisions).  An edit or a
        #: deletion is written only over that revision (:class:`~ucs.store.base.KVExpect`).
        self._revs: dict[tuple[str, int], int] = {}
        #: Counts the batches applied: a caller that computed changes on a copy
        #: (:func:`ucs.directory.csvio.apply_import`) says which revision it copied.
        self.revision = 0
        # Lookups by user name and by pairing identifier, rebuilt after a change
        # of users or lines: every login and every pairing uses them.
        self._by_username: dict[str, User] | None = None
        self._by_identifier: dict[str, Line] | None = None
        self._lines_indexed = 0

    # -- reading (synchronous: all in memory) -------------------------------------------

    def table(self, kind: str) -> dict[int, Any]:
        if kind not in KINDS:
            raise NotFound(f"there is no directory kind {kind!r}; kinds: {', '.join(KINDS)}")
        table: dict[int, Any] = getattr(self, kind)
        return table

    def entity(self, kind: str, entity_id: int) -> Any:
        found = self.table(kind).get(entity_id)
        if found is None:
            raise NotFound(f"{kind[:-1]} {entity_id} does not exist")
        return found

    def next_ids(self) -> dict[str, int]:
        """The id each kind's next entity will get (ids of deleted entities are not given again)."""
        return dict(self._next_id)

    def user_by_username(self, username: str) -> User | None:
        if self._by_username is None or len(self._by_username) != len(self.users):
            self._by_username = {u.username.lower(): u for u in self.users.values()}
        return self._by_username.get(username.lower())

    def line_by_device(self, device: str) -> Line | None:
        return next((ln for ln in self.lines.values() if ln.device == device), None)

    def line_by_identifier(self, identifier: str) -> Line | None:
        """A line by one of its pairing identifiers (a MAC, a name, an IP), or its device."""
        if self._by_identifier is None or self._lines_indexed != len(self.lines):
            self._lines_indexed = len(self.lines)
            index: dict[str, Line] = {}
            for line in self.lines.values():
                index[line.device.lower()] = line
                for i in line.identifiers:
                    index.setdefault(validate.norm_identifier(i), line)
            self._by_identifier = index
        return self._by_identifier.get(validate.norm_identifier(identifier))

    def queue_by_asterisk_name(self, name: str) -> Queue | None:
        return next((q for q in self.queues.values() if q.asterisk_name == name), None)

    def queues_of(self, user: User) -> list[tuple[Queue, QueueMembership]]:
        return [(self.queues[qid], m) for qid, m in user.queues.items() if qid in self.queues]

    def lines_of(self, user: User) -> list[Line]:
        """The lines a user may pair with: those listed on the user, or every line if none is."""
        if not user.lines:
            return list(self.lines.values())
        return [self.lines[i] for i in user.lines if i in self.lines]

    def user_dict(self, user: User) -> dict[str, Any]:
        """Seed 002's User object (configuration part), its ``lines`` as line objects."""
        return user.to_dict(self.lines)

    def user_of_line(self, line: Line) -> User | None:
        """The user a line belongs to when nobody is paired with it: the one whose
        ``primary_extension`` it is, else the only user that lists it."""
        owners = [u for u in self.users.values() if u.primary_extension == line.id]
        if not owners:
            owners = [u for u in self.users.values() if line.id in u.lines]
        return owners[0] if len(owners) == 1 else None

    def members_of_team(self, team_id: int) -> list[User]:
        return [u for u in self.users.values() if any(m.team_id == team_id for m in u.queues.values())]

    # -- passwords --------------------------------------------------------------------------

    def hash_password(self, password: str) -> Deferred[str]:
        return deferToThread(self._hasher.hash, password)

    def verify_password(self, user: User, password: str) -> Deferred[bool]:
        """Fires with whether ``password`` is the user's; never fails."""
        stored = user.password_hash

        def check() -> bool:
            if not stored:
                return False
            try:
                return self._hasher.verify(stored, password)
            except (VerificationError, InvalidHashError):
                return False

        return deferToThread(check)

    # -- loading ------------------------------------------------------------------------------

    async def load(self) -> None:
        for kind in KINDS:
            docs = await self._store.kv_items(f"dir.{kind}")
            table = self.table(kind)
            table.clear()
            for held in [k for k in self._revs if k[0] == kind]:
                del self._revs[held]
            for key, doc in docs.items():
                try:
                    entity = _from_doc(kind, doc)
                except (TypeError, ValueError) as e:
                    self.log.error("directory: stored {kind} {key} cannot be read ({e}); skipped", kind=kind, key=key, e=e)
                    continue
                table[entity.id] = entity
                self._revs[(kind, entity.id)] = kv_rev(doc)
            self._next_id[kind] = max(table, default=0) + 1
        self.revision += 1
        self._by_username = self._by_identifier = None
        self.log.info("directory loaded: {users} users, {queues} queues, {lines} lines",
                      users=len(self.users), queues=len(self.queues), lines=len(self.lines))

    async def ensure_admin(self, password: str = "") -> tuple[User, str | None]:
        """The first superuser, created on first start.  Returns it and the
        password when one was generated (to be printed once)."""
        for user in self.users.values():
            if user.superuser:
                return user, None
        generated = None
        if not password:
            password = generated = secrets.token_urlsafe(12)
        try:
            user = await self.add("users", {"username": "admin", "password": password, "superuser": True,
                                             "displayname": "Administrator"})
        except InvalidDataInput:
            # Another UCS node starting on the same empty store made it first (the name's claim)
            for user in self.users.values():
                if user.superuser:
                    return user, None
            raise
        return user, generated

    # -- changing -------------------------------------------------------------------------------

    async def add(self, kind: str, data: dict[str, Any], *, actor: str = "ucs", source: str = "ucs") -> Any:
        """Validate, store and apply a new entity; ``actor`` (a user name) and ``source``
        (``api``, ``ucs-admin``, ``ucs``) say who for the audit log."""
        (entity,) = await self.apply([Step(kind, "add", data)], actor=actor, source=source)
        return entity

    async def edit(self, kind: str, entity_id: int, data: dict[str, Any], *, actor: str = "ucs",
                   source: str = "ucs") -> Any:
        (entity,) = await self.apply([Step(kind, "edit", data, entity_id)], actor=actor, source=source)
        return entity

    async def delete(self, kind: str, entity_id: int, *, actor: str = "ucs", source: str = "ucs") -> Any:
        """Delete an entity, and take it out of every user that pointed at it (a group,
        a queue, a line, a team): the deletion, those users' edits and their audit
        entries are one transaction, applied in memory once it is committed."""
        (entity,) = await self.apply([Step(kind, "delete", None, entity_id)], actor=actor, source=source)
        return entity

    async def apply(self, steps: Sequence[Step], *, actor: str = "ucs", source: str = "ucs",
                    audit: Sequence[dict[str, Any]] = (), revision: int | None = None,
                    what: str = "") -> list[Any]:
        """Several changes, all or none: each step checked in order against the directory
        as the steps before it leave it (a user may name a queue added two steps earlier),
        then every document and audit entry (``audit``: more entries, e.g. an import's
        summary) written in ONE store transaction, and only then applied in memory and
        published.  A refused step (:class:`StepRefused`, naming its ``label`` and field),
        a password that cannot be hashed or a store that fails leave everything as it was.

        ``revision``: the :attr:`revision` the caller computed the steps on (an import
        resolved names to ids on a copy); if the directory has changed since, nothing is
        done and :class:`Stale` says so, for the caller to compute them again.  Returns
        each step's entity: the live one (a deleted one as it was).

        A new entity's id is the next free one *in the store*: the row is inserted only if
        no other UCS node has just taken that id (:class:`~ucs.store.base.KVNew`); if one
        has, its entity is read in (:meth:`refresh`) and the batch planned again with the
        ids after it (issue 20: two nodes adding at the same moment).  The same for a name
        that must be one entity's (:mod:`ucs.directory.claims`): planned again, the step is
        refused as taken, naming by whom.

        An entity edited or deleted is written only over the stored document this node
        planned from (its ``rev``, :class:`~ucs.store.base.KVExpect`): if another UCS node
        changed it meanwhile (its news not here yet), nothing is written, the entities are
        read again (:meth:`refresh`) and the batch planned again over them -- each step's
        fields applied over the other node's change, so both land, the audit's "before"
        being the entity as the other node left it.  A step on an entity the other node
        deleted is refused (:class:`NotFound`, saying so).  With ``revision``, the fresh
        entities make the batch :class:`Stale` (the caller computes it again)."""
        stale: set[tuple[str, str]] = set()
        gone: set[tuple[str, int]] = set()
        conflicts = changed = 0
        while True:
            try:
                return await self._apply_once(steps, actor, source, audit, revision, what, stale, frozenset(gone))
            except _Conflict as c:
                e = c.changed
                changed += 1
                if changed == _ATTEMPTS:
                    raise ProcessingError(f"{what or 'the change'} could not be stored: other UCS nodes kept "
                                          f"changing the same entities ({e.namespace}/{e.key}); nothing was "
                                          "changed, try again") from None
                for kind, ids in sorted(c.ids.items()):
                    self.log.info("directory: {kind} {ids} changed on another UCS node meanwhile; reading them "
                                  "again and making the change over them", kind=kind,
                                  ids=", ".join(map(str, sorted(ids))))
                    before = set(self.table(kind))
                    await self.refresh(kind, ids if len(ids) <= _INLINE_STEPS else None)
                    gone |= {(kind, i) for i in before - set(self.table(kind))}
            except KeyTaken as e:
                claimed = claims.kind_of(e.namespace)
                kind = claimed or e.namespace.removeprefix("dir.")
                conflicts += 1
                if kind not in KINDS or conflicts == _ATTEMPTS:
                    raise ProcessingError(f"{what or 'the change'} could not be stored: other UCS nodes kept "
                                          f"taking the new ids or names ({e.namespace}/{e.key}); nothing was "
                                          "changed, try again") from None
                if claimed is None:
                    self.log.info("directory: {kind} {id} was just added on another UCS node; reading it and "
                                  "giving the new entity the next id", kind=kind, id=e.key)
                else:
                    self.log.info("directory: {kind} {claim} was just taken on another UCS node; reading the "
                                  "{kind} again", kind=kind, claim=e.key)
                await self.refresh(kind)
                if claimed is not None and (e.namespace, e.key) not in stale \
                        and not claims.held(kind, self.table(kind), e.key):
                    self.log.warn("directory: the store's claim {ns}/{key} is held by no {kind}; written over",
                                  ns=e.namespace, key=e.key, kind=kind[:-1])
                    stale.add((e.namespace, e.key))
                    conflicts -= 1  # not another node's doing: each such claim is written over once

    async def _apply_once(self, steps: Sequence[Step], actor: str, source: str, audit: Sequence[dict[str, Any]],
                          revision: int | None, what: str, stale: set[tuple[str, str]],
                          gone: frozenset[tuple[str, int]]) -> list[Any]:
        await self._lock.acquire()
        try:
            if revision is not None and revision != self.revision:
                raise Stale(f"the directory changed (revision {self.revision}, not {revision})")
            for step in steps:
                self.table(step.kind)  # an unknown kind: NotFound, naming the kinds
            if len(steps) > _INLINE_STEPS:  # thousands of rows: checked off the reactor's thread
                draft = _Draft(self, gone)
                plan = await deferToThread(self._plan, steps, draft, actor, source)
            else:
                plan = self._plan(steps, _Draft(self, gone), actor, source)
            hashes = await gatherResults([self.hash_password(p) for p in plan.passwords.values()])
            for key, hashed in zip(plan.passwords, hashes):
                plan.final[key].password_hash = hashed
            # Each document carries its revision: a new one 1, an existing one's the next after
            # the one this node read, written only over that one (another node's edit meanwhile:
            # Changed). One added and deleted in the same batch was never stored: nothing to write.
            items: list[tuple[str, str, Any]] = []
            revs: dict[tuple[str, int], int] = {}
            expected: dict[str, set[int]] = {}
            for (kind, entity_id), entity in plan.final.items():
                ns, name = f"dir.{kind}", str(entity_id)
                if entity_id not in self.table(kind):
                    if entity is not None:
                        revs[(kind, entity_id)] = 1
                        items.append((ns, name, KVNew({**_to_doc(entity), "rev": 1})))
                    continue
                rev = self._revs.get((kind, entity_id), 0)
                expected.setdefault(kind, set()).add(entity_id)
                if entity is None:
                    items.append((ns, name, KVExpect(KV_DELETE, rev)))
                else:
                    revs[(kind, entity_id)] = rev + 1
                    items.append((ns, name, KVExpect({**_to_doc(entity), "rev": rev + 1}, rev)))
            released: list[tuple[str, str, Any]] = []
            for (kind, entity_id), entity in plan.final.items():
                let_go, taken = claims.changes(kind, entity_id, self.table(kind).get(entity_id), entity, stale)
                released += let_go
                items += taken
            items = released + items  # a value let go of may be taken in the same batch
            try:
                await self._write(items, plan.entries + list(audit), what)
            except Changed as e:
                raise _Conflict(e, expected) from None
            removed = {key: self.table(key[0])[key[1]] for key, e in plan.final.items()
                       if e is None and key[1] in self.table(key[0])}
            for (kind, entity_id), entity in plan.final.items():
                table = self.table(kind)
                if entity is None:
                    table.pop(entity_id, None)
                    self._revs.pop((kind, entity_id), None)
                    continue
                self._revs[(kind, entity_id)] = revs[(kind, entity_id)]
                if entity_id in table:
                    _assign(table[entity_id], entity)  # the same object: agents and sessions hold it
                else:
                    table[entity_id] = entity
            self._next_id = plan.next_id
            self.revision += 1
        finally:
            self._lock.release()

        def live(kind: str, entity_id: int) -> Any:
            return self.table(kind).get(entity_id) or removed.get((kind, entity_id))

        for kind, action, entity_id in plan.events:
            entity = live(kind, entity_id)
            if entity is not None:
                self._changed(kind, entity, action)
        return [live(kind, entity_id) for kind, entity_id in plan.results]

    async def set_members(self, queue_id: int, members: Sequence[tuple[int, int]], *, actor: str = "ucs",
                          source: str = "ucs") -> list[tuple[int, int]]:
        """Make ``members`` ((user id, penalty) pairs) the queue's members, all or nothing:
        a listed user joins it (or gets the new penalty, keeping a member's team and
        supervisor flag), a member not listed leaves it; the users' edits are one batch.
        Returns the queue's members as they are then, by user id."""
        wanted: dict[int, int] = {}
        for user_id, penalty in members:
            if user_id in wanted:
                raise InvalidDataInput({"members": f"user {user_id} is listed twice; list each member once"})
            wanted[user_id] = penalty
        for _ in range(_ATTEMPTS):
            revision = self.revision
            queue = self.entity("queues", queue_id)
            missing = sorted(set(wanted) - set(self.users))
            if missing:
                raise InvalidDataInput({"members": f"user {', '.join(map(str, missing))} does not exist; "
                                        "give the ids of users"})
            steps = []
            for user in sorted(self.users.values(), key=lambda u: u.id):
                queues = {str(k): m.to_dict() for k, m in user.queues.items()}
                was = user.queues.get(queue_id)
                if user.id in wanted:
                    if was is not None and was.priority == wanted[user.id]:
                        continue
                    queues[str(queue_id)] = {"priorities": wanted[user.id], "team_id": was.team_id if was else None,
                                             "supervisor": was.supervisor if was else False}
                elif was is not None:
                    del queues[str(queue_id)]
                else:
                    continue
                steps.append(Step("users", "edit", {"queues": queues}, user.id, label=f"user {user.username}"))
            try:
                if steps:
                    await self.apply(steps, actor=actor, source=source, revision=revision,
                                     what=f"the members of queue {queue.asterisk_name}")
            except Stale:
                continue  # a user changed meanwhile: computed again from the users as they are now
            return sorted((u.id, u.queues[queue_id].priority) for u in self.users.values() if queue_id in u.queues)
        raise ProcessingError(f"the users kept changing while the members of queue {queue_id} were set "
                              f"({_ATTEMPTS} tries); nothing was changed: try again")

    def _plan(self, steps: Sequence[Step], draft: _Draft, actor: str, source: str) -> _Plan:
        """The steps carried out on ``draft`` (never waits, touches nothing else): what to
        store, audit and publish."""
        plan = _Plan(next_id=draft.next_id)
        for index, step in enumerate(steps):
            try:
                self._plan_one(step, draft, plan, actor, source)
            except UCSError as e:
                if step.label is None:
                    raise
                raise StepRefused(index, step.label, e) from None
        return plan

    def _plan_one(self, step: Step, draft: _Draft, plan: _Plan, actor: str, source: str) -> None:
        kind, table = step.kind, draft.table(step.kind)
        if step.action == "add":
            entity_id = draft.next_id[kind]
            fields = self._fields(kind, step.data, None, draft, plan, entity_id)
            entity = _from_doc(kind, {**fields, "id": entity_id})
            draft.next_id[kind] = entity_id + 1
            table[entity_id] = plan.final[(kind, entity_id)] = entity
            plan.entries.append(_entry(actor, source, kind, "add", entity_id, None, entity))
            plan.events.append((kind, "add", entity_id))
            plan.results.append((kind, entity_id))
            return
        assert step.entity_id is not None
        current = draft.entity(kind, step.entity_id)
        if step.action == "edit":
            before = audit_doc(current)
            fields = self._fields(kind, step.data, current, draft, plan, current.id)
            entity = _from_doc(kind, {**_to_doc(current), **fields, "id": current.id})
            table[current.id] = plan.final[(kind, current.id)] = entity
            plan.entries.append(_entry(actor, source, kind, "edit", current.id, before, entity))
            plan.events.append((kind, "edit", current.id))
        elif step.action == "delete":
            _check_delete(draft, kind, current)
            touched = _without_references(draft, kind, current.id)
            plan.entries.append(_entry(actor, source, kind, "delete", current.id, audit_doc(current), None))
            del table[current.id]
            plan.final[(kind, current.id)] = None
            plan.passwords.pop((kind, current.id), None)
            for user, edited in touched:
                draft.users[user.id] = plan.final[("users", user.id)] = edited
                plan.entries.append(_entry(actor, source, "users", "edit", user.id, audit_doc(user), edited))
                plan.events.append(("users", "edit", user.id))
            plan.events.append((kind, "delete", current.id))
        else:
            raise InvalidDataInput({"action": f"{step.action!r} is not accepted; give add, edit or delete"})
        plan.results.append((kind, current.id))

    def _fields(self, kind: str, data: Any, current: Any | None, draft: _Draft, plan: _Plan,
                entity_id: int) -> dict[str, Any]:
        """The checked fields of a step; a user's password kept aside to be hashed (in a
        thread, once every step is good), the audit log seeing only that there is one."""
        fields = validate.check(kind, data, current, draft)
        if kind == "users" and "password" in fields:
            password = fields.pop("password")
            fields["password_hash"] = _UNHASHED if password else ""
            if password:
                plan.passwords[(kind, entity_id)] = password
            else:
                plan.passwords.pop((kind, entity_id), None)
        return fields

    async def _write(self, items: list[tuple[str, str, Any]], entries: list[dict[str, Any]],
                     what: str = "") -> None:
        """The change's documents and, with an audit writer, its audit entries: one transaction.
        A store that fails (away, full, refusing a row) fails the change, saying so."""
        try:
            if self._audit is None:
                await self._store.kv_write(items)
            else:
                await self._audit.kv_write(items, audit=entries)
        except (UCSError, KeyTaken, Changed):
            raise
        except Exception as e:
            why = " ".join(str(e).split()) or type(e).__name__
            what = what or ", ".join(f"{e['action']} {e['kind'][:-1]} {e['entity_id']}"
                                     for e in entries[:1]) or "the change"
            self.log.error("directory: {what} could not be stored: {why}; nothing was changed", what=what, why=why)
            raise ProcessingError(f"{what} could not be stored ({why}); nothing was changed") from e

    async def refresh(self, kind: str, ids: Iterable[int] | None = None) -> int:
        """Issue 20 (cluster hook, :mod:`ucs.cluster.dirsync`): another node changed these
        entities in the shared store (``ids``; ``None``: the whole kind, after missed news).
        Each is read again and applied in memory as a change of this node's would be (the
        same objects, published with ``origin="cluster"``, so it is not announced back).
        Each entity's stored revision is kept: this node's next edit of it is written over
        that one.  Read under the directory's lock, so that a change of this node's written
        meanwhile is not undone by an older read.  Returns how many changed."""
        table = self.table(kind)
        changes: list[tuple[Any, str]] = []
        await self._lock.acquire()
        try:
            if ids is None:
                stored = {int(k): d for k, d in (await self._store.kv_items(f"dir.{kind}")).items() if k.isdigit()}
                wanted = set(stored) | set(table)
            else:
                wanted, stored = set(ids), {}
                for entity_id in sorted(wanted):
                    doc = await self._store.kv_get(f"dir.{kind}", str(entity_id))
                    if doc is not None:
                        stored[entity_id] = doc
            for entity_id in sorted(wanted):
                current, doc = table.get(entity_id), stored.get(entity_id)
                if doc is None:
                    self._revs.pop((kind, entity_id), None)
                    if current is not None:
                        del table[entity_id]
                        changes.append((current, "delete"))
                    continue
                try:
                    entity = _from_doc(kind, doc)
                except (TypeError, ValueError) as e:
                    self.log.error("directory: stored {kind} {key} cannot be read ({e}); skipped", kind=kind,
                                   key=entity_id, e=e)
                    continue
                self._revs[(kind, entity_id)] = kv_rev(doc)
                if current is None:
                    table[entity_id] = entity
                    changes.append((entity, "add"))
                elif _to_doc(current) != _to_doc(entity):
                    _assign(current, entity)  # the same object: agents and sessions hold it
                    changes.append((current, "edit"))
            self._next_id[kind] = max(self._next_id[kind], max(table, default=0) + 1)
            if changes:
                self.revision += 1
        finally:
            self._lock.release()
        for entity, action in changes:
            self._changed(kind, entity, action, origin="cluster")
        return len(changes)

    def _changed(self, kind: str, entity: Any, action: str, **origin: str) -> None:
        if kind == "users":
            self._by_username = None
        elif kind == "lines":
            self._by_identifier = None
        if self._bus is None:
            return
        if kind == "users":
            self._bus.publish(EVENT_USER_CHANGE, entity, action=action, **origin)
        self._bus.publish(EVENT_CONFIG_CHANGE, entity, kind=kind, action=action, **origin)


def _check_delete(d: _Draft, kind: str, entity: Any) -> None:
    if kind == "users" and entity.superuser and sum(u.superuser for u in d.users.values()) == 1:
        raise InvalidDataInput({"id": f"user {entity.id} is the last superuser and cannot be deleted"})
    if kind == "callreasons" and any(r.parent_id == entity.id for r in d.callreasons.values()):
        raise InvalidDataInput({"id": f"call reason {entity.id} has sub-codes; delete them first"})


def _without_references(d: _Draft, kind: str, entity_id: int) -> list[tuple[User, User]]:
    """Each user that points at a deleted group, team, queue or line, with a copy
    of it that does not (applied once the deletion is stored)."""
    touched: list[tuple[User, User]] = []
    for user in d.users.values():
        changed = False
        edited: User = _from_doc("users", _to_doc(user))
        if kind == "groups" and edited.group_id == entity_id:
            edited.group_id, changed = None, True
        elif kind == "lines" and (entity_id in edited.lines or edited.primary_extension == entity_id):
            if entity_id in edited.lines:
                edited.lines.remove(entity_id)
            if edited.primary_extension == entity_id:
                edited.primary_extension = None
            changed = True
        elif kind == "queues" and entity_id in edited.queues:
            del edited.queues[entity_id]
            changed = True
        elif kind == "teams":
            for m in edited.queues.values():
                if m.team_id == entity_id:
                    m.team_id, changed = None, True
        if changed:
            touched.append((user, edited))
    return touched


def _assign(current: Any, new: Any) -> None:
    """``current`` takes ``new``'s fields, staying the same object."""
    for a in attrs.fields(type(current)):
        setattr(current, a.name, getattr(new, a.name))


def _entry(actor: str, source: str, kind: str, action: str, entity_id: int,
           before: dict[str, Any] | None, after: Any) -> dict[str, Any]:
    """One audit-log entry (:meth:`ucs.store.Store.audit_write`)."""
    return {"actor": actor, "source": source, "kind": kind, "action": action, "entity_id": str(entity_id),
            "before": before, "after": None if after is None else audit_doc(after)}
