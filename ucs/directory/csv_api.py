"""``config.import`` and ``config.export``: the directory as CSV over the API, for superusers.

The admin page's import (docs/administration.md, "The admin page") and any other
client: the same files as ``ucs-admin import``/``export``, read and written by the
same code (:mod:`ucs.directory.csvio`), so a file means the same on every way in.

An import is always tried first on a copy of the directory, in a thread (checking
thousands of rows for duplicates costs more than the reactor may spend); the reply
says what each row would do: added, changed (each column before → after, as an
export writes it), unchanged, or each bad row's line and column with what is wrong.
With ``dry_run`` false and no bad row, the same rows are then applied, one checked
change after the other, each audited under the caller with source ``import``, and
one more audit entry (action ``import``, the file's name as its id) says who
imported what and how much.  A bad row refuses the whole file: nothing is applied.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.threads import deferToThreadPool

from ucs.api.registry import Param, Registry
from ucs.api.session import Session
from ucs.constants import Role
from ucs.directory.csvio import Change, Problem, export, run_import, world_of
from ucs.directory.directory import KINDS, AuditWriter, Directory
from ucs.error import InvalidDataInput, UCSError

#: The largest CSV text ``config.import`` takes (UTF-8 bytes).  The agent bar's
#: WebSocket may refuse a smaller request first (``[web] max_request_size``).
MAX_CSV_BYTES = 1 << 20
#: What the audit log and a reply call a file given without a name.
PASTED = "pasted.csv"


def _kind(v: str) -> str:
    if v not in KINDS:
        raise ValueError(f"{v!r} is not a directory kind; accepted: {', '.join(KINDS)}")
    return v


def _csv(v: str) -> str:
    size = len(v.encode("utf-8", "surrogatepass"))
    if size > MAX_CSV_BYTES:
        raise ValueError(f"the file is {size} bytes; at most {MAX_CSV_BYTES} bytes are accepted "
                         "(split it, e.g. users in several files)")
    if not v.strip():
        raise ValueError("the file is empty; give a header row and at least one row")
    return v


def _file_name(v: str) -> str:
    v = v.strip()
    if not v or len(v) > 200 or any(c in v for c in "\r\n\x00/\\"):
        raise ValueError(f"{v!r} is not accepted; give a file name like users.csv (no path)")
    return v


def _run_to_end(coroutine: Any) -> Any:
    """The value of a coroutine that never waits (an import tried on a copy)."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise RuntimeError("the dry run waited for something; it must not")


class _Writer:
    """What :func:`run_import` applies through: the live directory, as the caller."""

    def __init__(self, directory: Directory, actor: str) -> None:
        self._directory = directory
        self._actor = actor

    def _dict(self, entity: Any) -> dict[str, Any]:
        if hasattr(entity, "username"):
            return self._directory.user_dict(entity)
        result: dict[str, Any] = entity.to_dict()
        return result

    async def add(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        return self._dict(await self._directory.add(kind, data, actor=self._actor, source="import"))

    async def edit(self, kind: str, entity_id: int, data: dict[str, Any]) -> dict[str, Any]:
        return self._dict(await self._directory.edit(kind, entity_id, data, actor=self._actor, source="import"))


def _report(kind: str, file: str, changes: list[Change], unchanged: list[tuple[str, int, str]],
            problems: list[Problem], applied: bool) -> dict[str, Any]:
    return {
        "kind": kind, "file": file, "applied": applied,
        "added": [{"line": c.line, "key": c.key, "id": c.entity_id, "after": c.after}
                  for c in changes if c.action == "add"],
        "changed": [{"line": c.line, "key": c.key, "id": c.entity_id, "before": c.before, "after": c.after}
                    for c in changes if c.action == "edit"],
        "unchanged": [{"line": line, "key": key} for _, line, key in unchanged],
        "problems": [{"line": p.line, "column": p.column, "message": p.message}
                     for p in sorted(problems, key=lambda p: p.line)],
    }


def register(registry: Registry, directory: Directory, audit: AuditWriter | None, reactor: Any) -> None:
    def actor(session: Session) -> str:
        return session.user.username if session.user is not None else "anonymous"

    async def try_on_copy(kind: str, file: str, text: str) -> tuple[list[Change], list[tuple[str, int, str]],
                                                                      list[Problem]]:
        world = world_of(directory)  # a snapshot, taken in the reactor's thread
        unchanged: list[tuple[str, int, str]] = []

        def dry() -> tuple[list[Change], list[Problem]]:
            result: tuple[list[Change], list[Problem]] = _run_to_end(
                run_import({kind: (file, text)}, world, None, unchanged))
            return result

        changes, problems = await deferToThreadPool(reactor, reactor.getThreadPool(), dry)
        return changes, unchanged, problems

    async def import_(session: Session, kind: str, text: str, dry_run: bool | None,
                      file: str | None) -> dict[str, Any]:
        file = file or PASTED
        changes, unchanged, problems = await try_on_copy(kind, file, text)
        if problems and dry_run is False:
            raise InvalidDataInput({f"line {p.line}, {p.column}": p.message for p in problems[:50]})
        if dry_run is not False or not changes:
            return _report(kind, file, changes, unchanged, problems, False)
        # Applied on the live directory; the copy it follows starts from now (the
        # directory may have changed since the copy was taken: each change is checked again).
        world = world_of(directory)
        unchanged = []
        try:
            done, problems = await run_import({kind: (file, text)}, world, _Writer(directory, actor(session)),
                                              unchanged)
        except UCSError as e:
            raise InvalidDataInput(f"the directory changed during the import and a row was refused ({e}); "
                                   "the rows before it were applied: preview the file again") from None
        if problems:  # someone changed the directory between the check and now
            refused = "; ".join(f"line {p.line}, {p.column}: {p.message}" for p in problems[:20])
            raise InvalidDataInput(f"the directory changed during the import: {len(done)} change(s) were applied, "
                                   f"these rows were not ({refused}); preview the file again")
        if audit is not None:
            await audit.audit_write([{
                "actor": actor(session), "source": "import", "kind": kind, "action": "import", "entity_id": file,
                "before": None, "after": {"file": file, "added": sum(c.action == "add" for c in done),
                                          "changed": sum(c.action == "edit" for c in done),
                                          "unchanged": len(unchanged)},
            }])
        return _report(kind, file, done, unchanged, [], True)

    def export_(session: Session, kind: str) -> dict[str, Any]:
        return {"kind": kind, "file": f"{kind}.csv", "csv": export(kind, world_of(directory))}

    registry.add("config.import", import_, [
        Param("kind", str, check=_kind, doc=f"one of {', '.join(KINDS)}"),
        Param("csv", str, check=_csv, doc=f"the file's text: a header row, then rows (at most {MAX_CSV_BYTES} bytes)"),
        Param("dry_run", bool, required=False, default=True,
              doc="true (the default): only say what would change; false: apply, when no row is bad"),
        Param("file", str, required=False, check=_file_name, doc="the file's name, for the reply and the audit log"),
    ], role=Role.SUPERUSER,
        doc="Add and change entities of one kind from CSV (ucs-admin import's format): what each row "
            "would do, or does; a bad row (named by line and column) refuses the whole file.")
    registry.add("config.export", export_, [Param("kind", str, check=_kind, doc=f"one of {', '.join(KINDS)}")],
                 role=Role.SUPERUSER, doc="Every entity of one kind as CSV (ucs-admin export's format, no passwords).")
