"""``config.import``, ``config.importAll`` and ``config.export``: the directory as CSV over
the API, for superusers.

The admin page's import (docs/administration.md, "The admin page") and any other
client: the same files as ``ucs-admin import``/``export``, read and written by the
same code (:mod:`ucs.directory.csvio`), so a file means the same on every way in.

An import is always tried first on a copy of the directory, in a thread (checking
thousands of rows for duplicates costs more than the reactor may spend); the reply
says what each row would do: added, changed (each column before → after, as an
export writes it), unchanged, or each bad row's line and column with what is wrong.
With ``dry_run`` false, the file is tried on the directory as it is now (the
preview may be old) and, when no row is bad, applied as one batch (:func:`ucs.directory.csvio.apply_import`):
every change audited under the caller with source ``import``, and one more audit
entry (action ``import``, the file's name as its id) saying who imported what and
how much, all in ONE store transaction.  A bad row refuses the whole file, and so
does a store that fails: nothing is stored, nothing changes in memory, no bar is
told of anything.  ``config.importAll`` does the same for several files (one per
kind) at once: every file's changes in that one transaction (``ucs-admin import``
through a running UCS).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.threads import deferToThreadPool

from ucs.api.registry import Param, Registry
from ucs.api.session import Session
from ucs.constants import Role
from ucs.directory.csvio import (
    ORDER, Change, ImportRefused, Problem, apply_import, export, run_import, run_to_end, world_of,
)
from ucs.directory.directory import KINDS, AuditWriter, Directory
from ucs.error import InvalidDataInput

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


def _files(v: list[Any]) -> dict[str, tuple[str, str]]:
    """``config.importAll``'s files: kind → (file name, CSV text), one file per kind."""
    if not v:
        raise ValueError("no file given; give [{\"kind\": …, \"csv\": …, \"file\": …}, …]")
    out: dict[str, tuple[str, str]] = {}
    for i, item in enumerate(v):
        where = f"files[{i}]"
        if not isinstance(item, dict) or not {"kind", "csv"} <= set(item) or set(item) - {"kind", "csv", "file"}:
            raise ValueError(f"{where} is not accepted; give {{\"kind\": …, \"csv\": …, \"file\": …}} "
                             "(file optional)")
        try:
            kind = _kind(item["kind"]) if isinstance(item["kind"], str) else _kind(repr(item["kind"]))
            if not isinstance(item["csv"], str):
                raise ValueError(f"{item['csv']!r} is not accepted; give the file's text")
            text = _csv(item["csv"])
            file = _file_name(item["file"]) if isinstance(item.get("file"), str) else f"{kind}.csv"
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        if kind in out:
            raise ValueError(f"{where}: {out[kind][0]} is the {kind} file already; one file per kind")
        out[kind] = (file, text)
    return out


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

    async def try_on_copy(files: dict[str, tuple[str, str]]) -> tuple[list[Change], list[tuple[str, int, str]],
                                                                       list[Problem]]:
        world = world_of(directory)  # a snapshot, taken in the reactor's thread
        unchanged: list[tuple[str, int, str]] = []

        def dry() -> tuple[list[Change], list[Problem]]:
            result: tuple[list[Change], list[Problem]] = run_to_end(run_import(files, world, None, unchanged))
            return result

        changes, problems = await deferToThreadPool(reactor, reactor.getThreadPool(), dry)
        return changes, unchanged, problems

    async def import_(session: Session, kind: str, text: str, dry_run: bool | None,
                      file: str | None) -> dict[str, Any]:
        file = file or PASTED
        if dry_run is not False:
            changes, unchanged, problems = await try_on_copy({kind: (file, text)})
            return _report(kind, file, changes, unchanged, problems, False)
        try:
            done, unchanged = await apply_import(directory, {kind: (file, text)}, reactor, actor=actor(session),
                                                 source="import", summary=audit is not None)
        except ImportRefused as e:
            raise InvalidDataInput({f"line {p.line}, {p.column}": p.message for p in e.problems[:50]}) from None
        return _report(kind, file, done, unchanged, [], bool(done))

    async def import_all(session: Session, files: dict[str, tuple[str, str]], dry_run: bool | None) -> dict[str, Any]:
        if dry_run is not False:
            changes, unchanged, problems = await try_on_copy(files)
            applied = False
        else:
            try:
                changes, unchanged = await apply_import(directory, files, reactor, actor=actor(session),
                                                        source="import", summary=audit is not None)
            except ImportRefused as e:
                raise InvalidDataInput({f"{p.file} line {p.line}, {p.column}": p.message
                                        for p in e.problems[:50]}) from None
            problems, applied = [], bool(changes)
        return {"applied": applied, "files": [
            _report(kind, file, [c for c in changes if c.kind == kind], [u for u in unchanged if u[0] == kind],
                    [p for p in problems if p.file == file], applied)
            for kind, (file, _) in sorted(files.items(), key=lambda f: ORDER.index(f[0]))]}

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
    registry.add("config.importAll", import_all, [
        Param("files", list, check=_files, doc="[{\"kind\", \"csv\", \"file\"}, …]: one file per kind"),
        Param("dry_run", bool, required=False, default=True,
              doc="true (the default): only say what would change; false: apply, when no row of any file is bad"),
    ], role=Role.SUPERUSER,
        doc="config.import for several files at once (a center: queues, lines, users …), applied in the "
            "order kinds refer to each other, all in one transaction or none; the reply has each file's "
            "report in that order.")
    registry.add("config.export", export_, [Param("kind", str, check=_kind, doc=f"one of {', '.join(KINDS)}")],
                 role=Role.SUPERUSER, doc="Every entity of one kind as CSV (ucs-admin export's format, no passwords).")
