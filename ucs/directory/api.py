"""``config.<kind>.get/list/add/edit/delete`` for every directory kind.

Reading is for supervisors (agents get what they need in their state
object), except the lists an agent bar shows (queues, AUX and call reasons);
changing is for superusers.  A supervisor reads the users they supervise
only (``config.users.get`` of another is refused, ``config.users.list`` leaves
them out; :mod:`ucs.api.scope`).  ``edit`` takes the entity's fields with its
``id``, as seed 000's middleware example (``edit_user(handler, user, data)``)
expects.  Each change is audited under the session's user name, source ``api``
(``audit.list``: :mod:`ucs.directory.audit_api`).

``config.queues.setMembers`` sets a queue's members at once (the admin page's queue
form): the users it changes are edited in one transaction, or none is.
"""

from __future__ import annotations

from typing import Any

from ucs.api.registry import Param, Registry
from ucs.api.scope import ActsOn, Subject
from ucs.api.session import Session
from ucs.constants import Role
from ucs.directory.directory import KINDS, Directory

#: Kinds whose list an agent may read.
_AGENT_READABLE = {"queues", "auxreasons", "callreasons", "groups"}


def _positive(v: int) -> int:
    if v < 1:
        raise ValueError(f"{v} is not an id; give a positive integer")
    return v


def _actor(session: Session) -> str:
    return session.user.username if session.user is not None else "anonymous"


def register(registry: Registry, directory: Directory) -> None:
    registry.scope.directory = directory
    for kind in KINDS:
        _register_kind(registry, directory, kind)


def _register_kind(registry: Registry, directory: Directory, kind: str) -> None:
    one = kind[:-1]
    read_role = Role.AGENT if kind in _AGENT_READABLE else Role.SUPERVISOR

    def get(session: Session, entity_id: int) -> dict[str, Any]:
        result: dict[str, Any] = directory.entity(kind, entity_id).to_dict()
        return result

    def list_(session: Session) -> list[dict[str, Any]]:
        return [e.to_dict() for e in sorted(directory.table(kind).values(), key=lambda e: e.id)]

    async def add(session: Session, data: dict[str, Any]) -> dict[str, Any]:
        entity = await directory.add(kind, data, actor=_actor(session), source="api")
        result: dict[str, Any] = entity.to_dict()
        return result

    async def edit(session: Session, data: dict[str, Any]) -> dict[str, Any]:
        from ucs.error import InvalidDataInput

        entity_id = data.get("id")
        if isinstance(entity_id, bool) or not isinstance(entity_id, int):
            raise InvalidDataInput({"id": f"{entity_id!r} is not accepted; give the id of the {one} to edit"})
        entity = await directory.edit(kind, entity_id, data, actor=_actor(session), source="api")
        result: dict[str, Any] = entity.to_dict()
        return result

    async def delete(session: Session, entity_id: int) -> dict[str, Any]:
        entity = await directory.delete(kind, entity_id, actor=_actor(session), source="api")
        return {"id": entity.id, "deleted": True}

    ident = Param("id", int, check=_positive, doc=f"the {one}'s id")
    data = Param("data", dict, doc=f"the {one}'s fields")
    users = kind == "users"
    registry.add(f"config.{kind}.get", get, [ident], role=read_role, doc=f"One {one}.",
                 acts_on=ActsOn(Subject.AGENT, "id") if users else None)
    registry.add(f"config.{kind}.list", list_, role=read_role,
                 doc="The users you supervise (every one for a superuser)." if users else f"Every {one}.",
                 shows=users)
    registry.add(f"config.{kind}.add", add, [data], role=Role.SUPERUSER, doc=f"Create a {one}.")
    registry.add(f"config.{kind}.edit", edit, [data], role=Role.SUPERUSER,
                 doc=f"Change some fields of a {one} (data holds its id).")
    registry.add(f"config.{kind}.delete", delete, [ident], role=Role.SUPERUSER, doc=f"Delete a {one}.")
    if kind == "queues":
        _register_members(registry, directory, ident)


def _members(v: list[Any]) -> list[tuple[int, int]]:
    out = []
    for i, item in enumerate(v):
        where = f"members[{i}]"
        if not isinstance(item, dict) or set(item) - {"user_id", "penalty"} or "user_id" not in item:
            raise ValueError(f"{where}: {item!r} is not accepted; give {{\"user_id\": id, \"penalty\": 0-1000}}")
        user_id, penalty = item["user_id"], item.get("penalty", 0)
        if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id < 1:
            raise ValueError(f"{where}.user_id: {user_id!r} is not accepted; give a user's id")
        if isinstance(penalty, bool) or not isinstance(penalty, int) or not 0 <= penalty <= 1000:
            raise ValueError(f"{where}.penalty: {penalty!r} is not accepted; give an integer from 0 to 1000")
        out.append((user_id, penalty))
    return out


def _register_members(registry: Registry, directory: Directory, ident: Param) -> None:
    async def set_members(session: Session, queue_id: int, members: list[tuple[int, int]]) -> dict[str, Any]:
        now = await directory.set_members(queue_id, members, actor=_actor(session), source="api")
        return {"id": queue_id, "members": [{"user_id": u, "penalty": p} for u, p in now]}

    registry.add("config.queues.setMembers", set_members, [
        ident, Param("members", list, check=_members,
                     doc="every member of the queue: [{\"user_id\": id, \"penalty\": 0-1000}]; a user not "
                         "listed leaves the queue"),
    ], role=Role.SUPERUSER,
        doc="Set a queue's members, all or nothing (each user's edit audited; live: members leave and "
            "join the queue in Asterisk).")
