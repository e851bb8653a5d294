"""The directory as CSV: one file per kind, export and import.

Each kind has its columns (:data:`COLUMNS`, the first is the key a row is
matched by: a user's ``username``, a queue's ``asterisk_name``, a line's
``device``, a call reason's ``parent`` and ``code``, else ``name``).  Other
entities are named, never numbered: a user's ``group``, ``lines`` (devices),
``primary_extension`` (a device) and ``queues``
(``asterisk_name:priority[:team[:supervisor]]``), a call reason's ``parent``
(its code).  Lists are separated by ``;``; true/false also as yes/no, 1/0.

Import: a row whose key exists edits the fields that differ, any other row
adds an entity; what the files leave out is left as it is (columns too).  A
user's ``password`` is used only when the user is added, and an empty
``displayname`` means "as it is".  Everything is first tried on a copy of the
directory (:class:`World`) with the directory's own checks: each bad row is
named with its line and column, and nothing is applied when one is bad.
Applying (:func:`apply_import`) tries the files again on a copy of the directory
as it is now, then hands every change to the directory as ONE batch
(:meth:`Directory.apply`): checked again in order, stored in one transaction
with its audit entries, applied and published only once stored.  A row refused
then (the directory changed since the preview), or a store that fails, leaves
everything as it was.  Importing the same files again changes nothing.

Used by ``ucs-admin`` (:mod:`ucs.admin.cli`) and by the API's ``config.import`` /
``config.export`` (:mod:`ucs.directory.csv_api`, the admin page), so a file means the
same thing on both ways in.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

import attrs

from ucs.directory import validate
from twisted.internet.threads import deferToThreadPool

from ucs.directory.directory import KINDS, Directory, Stale, Step, StepRefused
from ucs.directory.model import QueueMembership, User
from ucs.error import InvalidDataInput, ProcessingError

#: Columns by kind, the key first.
COLUMNS: dict[str, tuple[str, ...]] = {
    "groups": ("name",),
    "teams": ("name",),
    "auxreasons": ("name",),
    "queues": ("asterisk_name", "name", "type", "require_reason", "record", "number"),
    "lines": ("device", "name", "identifiers", "auto_answer"),
    "callreasons": ("code", "parent", "name"),
    "users": ("username", "firstname", "lastname", "displayname", "email", "locale", "group", "superuser",
              "supervisor", "external_id", "number", "lines", "primary_extension", "queues", "password"),
}
#: The order files are applied in: what is referred to before what refers to it.
ORDER = ("groups", "teams", "auxreasons", "queues", "lines", "callreasons", "users")
#: Column → the API field it sets, where they differ.
_FIELD = {"group": "group_id", "parent": "parent_id"}
_COLUMN = {v: k for k, v in _FIELD.items()}
_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False, "": False}


class RowError(ValueError):
    """Bad columns of a row; ``partial`` the data of its good ones."""

    def __init__(self, fields: dict[str, str], partial: dict[str, Any] | None = None) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields
        self.partial = partial or {}


@attrs.define
class Change:
    """One thing an import does (or would do).

    ``before``/``after``: the columns it changes, as an export writes them (a preview
    shows them to a person: names, not ids); an add's ``after`` is its whole row."""

    kind: str
    action: str          # "add" | "edit"
    key: str
    fields: dict[str, Any]
    entity_id: int | None = None
    line: int = 0
    before: dict[str, str] = attrs.Factory(dict)
    after: dict[str, str] = attrs.Factory(dict)

    def describe(self) -> str:
        shown = {k: ("***" if k == "password" else v) for k, v in self.fields.items()}
        return f"{self.action} {self.kind[:-1]} {self.key}: " + ", ".join(f"{k}={v!r}" for k, v in shown.items())


@attrs.define
class Problem:
    file: str
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.column}: {self.message}"


class World:
    """A copy of the directory (its entities as models) to resolve names and check rows on."""

    def __init__(self, listed: dict[str, list[dict[str, Any]]], next_ids: dict[str, int] | None = None) -> None:
        self.directory = Directory(store=None)  # type: ignore[arg-type]  # never loads or writes
        #: The ids the directory will give next (a deleted entity's id is not given again),
        #: so that rows naming what earlier rows add resolve to the ids the batch gives.
        self._next_ids = dict(next_ids or {})
        for kind in KINDS:
            for d in listed.get(kind, []):
                self.put(kind, d)

    def put(self, kind: str, d: dict[str, Any]) -> Any:
        cls = KINDS[kind]
        if cls is User:
            model = User(
                id=d["id"], username=d["username"], firstname=d["firstname"], lastname=d["lastname"],
                displayname=d["displayname"], email=d["email"], locale=d["locale"], group_id=d["group_id"],
                superuser=d["superuser"], supervisor=d["supervisor"], external_id=d["external_id"],
                number=d["number"], data=d["data"], lines=list(d["line_ids"]),
                primary_extension=d["primary_extension"], password_hash="(kept)",
                queues={int(q): QueueMembership(m["priorities"], m["team_id"], m["supervisor"])
                        for q, m in d["queues"].items()})
        else:
            names = {a.name for a in attrs.fields(cls)}
            model = cls(**{k: v for k, v in d.items() if k in names})
        self.directory.table(kind)[model.id] = model
        self.directory._by_username = self.directory._by_identifier = None
        return model

    def next_id(self, kind: str) -> int:
        return max(self._next_ids.get(kind, 1), max(self.directory.table(kind), default=0) + 1)

    def find(self, kind: str, key: str) -> Any:
        """The entity a row's key names, or ``None``."""
        d = self.directory
        if kind == "users":
            return d.user_by_username(key)
        if kind == "queues":
            return d.queue_by_asterisk_name(key)
        if kind == "lines":
            return d.line_by_device(key)
        if kind == "callreasons":
            parent_code, _, code = key.rpartition("/")
            parent = self.find("callreasons", parent_code) if parent_code else None
            if parent_code and parent is None:
                return None
            pid = parent.id if parent is not None else None
            return next((r for r in d.callreasons.values() if r.code == code and r.parent_id == pid), None)
        return next((e for e in d.table(kind).values() if e.name.lower() == key.lower()), None)

    def ref(self, kind: str, key: str, column: str) -> int:
        found = self.find(kind, key)
        if found is None:
            raise RowError({column: f"there is no {kind[:-1]} {key!r}"})
        return int(found.id)


# -- a row to the API's data ----------------------------------------------------------------


def _bool(column: str, v: str) -> bool:
    try:
        return _BOOLS[v.strip().lower()]
    except KeyError:
        raise RowError({column: f"{v!r} is not accepted; give true or false (yes/no, 1/0)"}) from None


def _list(v: str) -> list[str]:
    return [p.strip() for p in v.split(";") if p.strip()]


def row_key(kind: str, row: dict[str, str]) -> str:
    if kind == "callreasons":
        return f"{row.get('parent', '').strip()}/{row.get('code', '').strip()}"
    return row.get(COLUMNS[kind][0], "").strip()


def _memberships(world: World, v: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in _list(v):
        parts = [p.strip() for p in item.split(":")]
        if len(parts) > 4:
            raise RowError({"queues": f"{item!r} is not accepted; give asterisk_name[:priority[:team[:supervisor]]]"})
        qid = world.ref("queues", parts[0], "queues")
        m: dict[str, Any] = {"priorities": 0, "team_id": None, "supervisor": False}
        if len(parts) > 1 and parts[1]:
            if not parts[1].isdigit():
                raise RowError({"queues": f"{item!r}: priority {parts[1]!r} is not a number"})
            m["priorities"] = int(parts[1])
        if len(parts) > 2 and parts[2]:
            m["team_id"] = world.ref("teams", parts[2], "queues")
        if len(parts) > 3:
            m["supervisor"] = _bool("queues", parts[3])
        out[str(qid)] = m
    return out


def to_data(kind: str, row: dict[str, str], world: World) -> dict[str, Any]:
    """The API's ``data`` for a row (the columns it has), names resolved on ``world``."""
    data: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for column, raw in row.items():
        value = (raw or "").strip()
        try:
            if column in ("superuser", "supervisor", "require_reason", "record"):
                data[column] = _bool(column, value)
            elif column == "type":
                if value not in ("0", "1", ""):
                    raise RowError({column: f"{value!r} is not accepted; give 0 (outgoing) or 1 (incoming)"})
                data[column] = int(value or 1)
            elif column == "identifiers":
                data[column] = _list(value)
            elif column == "auto_answer":
                data[column] = value or "none"
            elif column == "group":
                data["group_id"] = world.ref("groups", value, column) if value else None
            elif column == "parent":
                data["parent_id"] = world.ref("callreasons", f"/{value}", column) if value else None
            elif column == "lines":
                data[column] = [world.ref("lines", dev, column) for dev in _list(value)]
            elif column == "primary_extension":
                data[column] = world.ref("lines", value, column) if value else None
            elif column == "queues":
                data[column] = _memberships(world, value)
            elif column == "displayname" and not value:
                continue
            elif column == "password" and not value:
                continue
            else:
                data[column] = value
        except RowError as e:
            problems.update(e.fields)
    if problems:
        raise RowError(problems, data)
    return data


def _differs(model: Any, name: str, value: Any) -> bool:
    current = getattr(model, name)
    if name == "queues":
        return {k: m.to_dict() for k, m in current.items()} != {k: m.to_dict() for k, m in value.items()}
    return bool(current != value)


# -- import ----------------------------------------------------------------------------------


def read_csv(kind: str, text: str, file: str) -> tuple[list[tuple[int, dict[str, str]]], list[Problem]]:
    """Rows with their line numbers, or the problems of the header and keys.

    A byte-order mark (spreadsheets write one) is not part of the first column's name;
    text that is not CSV (an unclosed quote, a field over the csv module's limit) is a
    problem of its line, and the rows after it are not read."""
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))
    try:
        header = reader.fieldnames or []
    except csv.Error as e:
        return [], [Problem(file, max(reader.line_num, 1), "-", f"cannot be read as CSV ({e})")]
    problems = [Problem(file, 1, c, f"is not a column of {kind}; accepted: {', '.join(COLUMNS[kind])}")
                for c in header if c not in COLUMNS[kind]]
    if COLUMNS[kind][0] not in header:
        problems.append(Problem(file, 1, COLUMNS[kind][0], "the key column is missing"))
    if problems:
        return [], problems
    rows: list[tuple[int, dict[str, str]]] = []
    seen: dict[str, int] = {}
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            problems.append(Problem(file, reader.line_num + 1, "-", f"cannot be read as CSV ({e}); the rest of the "
                                    "file was not read"))
            break
        line = reader.line_num
        if None in row or any(v is None for v in row.values()):
            problems.append(Problem(file, line, "-", f"has {len(header)} columns in the header but not here"))
            continue
        key = row_key(kind, row).lower()
        if key in seen:
            problems.append(Problem(file, line, COLUMNS[kind][0], f"{row_key(kind, row)!r} is on line {seen[key]} too"))
            continue
        seen[key] = line
        rows.append((line, row))
    return rows, problems


def _ordered(kind: str, rows: list[tuple[int, dict[str, str]]]) -> list[tuple[int, dict[str, str]]]:
    if kind == "callreasons":  # top-level codes before the sub-codes that name them
        return sorted(rows, key=lambda r: bool((r[1].get("parent") or "").strip()))
    return rows


async def run_import(files: dict[str, tuple[str, str]], world: World, backend: Any | None,
                     unchanged: list[tuple[str, int, str]] | None = None) -> tuple[list[Change], list[Problem]]:
    """Import ``files`` (kind → (file name, CSV text)).

    With ``backend`` ``None``: tried on ``world`` only, every problem collected.  With a
    backend (after a clean try on a copy): carried out there, ``world`` following it.
    ``unchanged`` collects (kind, line, key) of the rows that change nothing."""
    changes: list[Change] = []
    problems: list[Problem] = []
    parsed: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for kind, (file, text) in files.items():
        rows, bad = read_csv(kind, text, file)
        parsed[kind] = rows
        problems.extend(bad)
    for kind in ORDER:
        if kind not in files:
            continue
        file = files[kind][0]
        for line, row in _ordered(kind, parsed[kind]):
            key = row_key(kind, row)
            try:
                change = await _one(kind, key, row, world, backend)
            except RowError as e:
                problems.extend(Problem(file, line, c, m) for c, m in e.fields.items())
                continue
            if change is not None:
                change.line = line
                changes.append(change)
            elif unchanged is not None:
                unchanged.append((kind, line, key))
    return changes, problems


async def _one(kind: str, key: str, row: dict[str, str], world: World, backend: Any | None) -> Change | None:
    problems: dict[str, str] = {}
    try:
        data = to_data(kind, row, world)
    except RowError as e:
        problems, data = dict(e.fields), e.partial
    current = world.find(kind, key)
    if current is not None:
        data.pop("password", None)
    try:
        fields = validate.check(kind, data, current, world.directory)
    except InvalidDataInput as e:
        message = e.message if isinstance(e.message, dict) else {"-": str(e)}
        for k, v in message.items():
            problems.setdefault(_COLUMN.get(k, k), str(v))
    if problems:
        raise RowError(problems)
    if current is None:
        change = Change(kind, "add", key, data)
        if backend is None:
            fields.pop("password", None)
            new = KINDS[kind](id=world.next_id(kind), **fields)
            world.directory.table(kind)[new.id] = new
            world.directory._by_username = world.directory._by_identifier = None
        else:
            new = world.put(kind, await backend.add(kind, data))
            change.entity_id = new.id
        change.after = {c: v for c, v in export_row(kind, new, world.directory).items() if v}
        return change
    changed = {n for n, v in fields.items() if _differs(current, n, v)}
    if not changed:
        return None
    columns = [_COLUMN.get(n, n) for n in sorted(changed)]
    old = export_row(kind, current, world.directory)
    change = Change(kind, "edit", key, {n: data[n] for n in data if n in changed}, current.id,
                    before={c: old.get(c, "") for c in columns})
    if backend is None:
        for n in changed:
            setattr(current, n, fields[n])
        now = current
    else:
        now = world.put(kind, await backend.edit(kind, current.id, change.fields))
    new_row = export_row(kind, now, world.directory)
    change.after = {c: new_row.get(c, "") for c in columns}
    return change


async def load_world(backend: Any, kinds: Iterable[str] = KINDS) -> World:
    return World({kind: await backend.list(kind) for kind in kinds})


def world_of(directory: Directory) -> World:
    """A copy of a live directory, to try an import on (or export from) without touching it."""
    return World({kind: [directory.user_dict(e) if kind == "users" else e.to_dict()
                         for e in directory.table(kind).values()] for kind in KINDS}, directory.next_ids())


def run_to_end(coroutine: Any) -> Any:
    """The value of a coroutine that never waits (an import tried on a copy)."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise RuntimeError("the dry run waited for something; it must not")


class ImportRefused(Exception):
    """Rows of an import that were refused (each named by file, line and column): nothing was applied."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems[:20]))
        self.problems = problems


#: How many times an import is computed again when the directory changed meanwhile.
ATTEMPTS = 3


async def apply_import(directory: Directory, files: dict[str, tuple[str, str]], reactor: Any, *, actor: str,
                       source: str, summary: bool = False) -> tuple[list[Change], list[tuple[str, int, str]]]:
    """Import ``files`` (kind → (file name, CSV text)) into the live ``directory``, all or nothing.

    The files are tried on a copy of the directory as it is now (in a thread), then
    every change is one batch (:meth:`Directory.apply`, each audited under ``actor`` and
    ``source``; with ``summary`` one more entry per file, action ``import``, counts the
    rows), stored in one transaction.  Raises :class:`ImportRefused` naming each bad row;
    nothing is applied then, nor when the store fails (:class:`ProcessingError`).
    Returns the changes made and the (kind, line, key) of the rows that change nothing."""
    for _ in range(ATTEMPTS):
        revision = directory.revision
        world = world_of(directory)  # in the reactor's thread: the directory as of ``revision``
        unchanged: list[tuple[str, int, str]] = []

        def plan() -> tuple[list[Change], list[Problem]]:
            result: tuple[list[Change], list[Problem]] = run_to_end(run_import(files, world, None, unchanged))
            return result

        changes, problems = await deferToThreadPool(reactor, reactor.getThreadPool(), plan)
        if problems:
            raise ImportRefused(sorted(problems, key=lambda p: (p.file, p.line)))
        if not changes:
            return [], unchanged
        steps = [Step(c.kind, c.action, c.fields, c.entity_id, label=f"{files[c.kind][0]} line {c.line}")
                 for c in changes]
        entries = [_summary(actor, kind, file, changes, unchanged) for kind, (file, _) in files.items()
                   if summary and kind in {c.kind for c in changes} | {u[0] for u in unchanged}]
        what = "the import of " + ", ".join(file for file, _ in files.values()) + f" ({len(steps)} changes)"
        try:
            done = await directory.apply(steps, actor=actor, source=source, audit=entries, revision=revision,
                                         what=what)
        except Stale:
            continue  # changed while the files were tried: try them again on the directory as it is now
        except StepRefused as e:
            c = changes[e.index]
            raise ImportRefused([Problem(files[c.kind][0], c.line, _COLUMN.get(k, k), v)
                                 for k, v in e.fields.items()]) from None
        for c, entity in zip(changes, done):
            c.entity_id = entity.id
        return changes, unchanged
    raise ProcessingError(f"the directory kept changing while the import was applied ({ATTEMPTS} tries); "
                          "nothing was changed: try again")


def _summary(actor: str, kind: str, file: str, changes: list[Change],
             unchanged: list[tuple[str, int, str]]) -> dict[str, Any]:
    """The import's own audit entry: who imported which file, and how many rows did what."""
    mine = [c for c in changes if c.kind == kind]
    return {"actor": actor, "source": "import", "kind": kind, "action": "import", "entity_id": file,
            "before": None, "after": {"file": file, "added": sum(c.action == "add" for c in mine),
                                      "changed": sum(c.action == "edit" for c in mine),
                                      "unchanged": sum(u[0] == kind for u in unchanged)}}


# -- export ----------------------------------------------------------------------------------


def export(kind: str, world: World) -> str:
    """Every entity of ``kind`` as CSV (no passwords), in id order."""
    out = io.StringIO()
    columns = [c for c in COLUMNS[kind] if c != "password"]
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    for e in sorted(world.directory.table(kind).values(), key=lambda e: e.id):
        writer.writerow(export_row(kind, e, world.directory))
    return out.getvalue()


def export_row(kind: str, e: Any, d: Directory) -> dict[str, str]:
    """One entity as its CSV row (no password), other entities named."""

    def dev(line_id: int | None) -> str:
        return d.lines[line_id].device if line_id in d.lines else ""

    if kind == "users":
        queues = []
        for qid, m in e.queues.items():
            if qid not in d.queues:
                continue
            parts = [d.queues[qid].asterisk_name, str(m.priority)]
            if m.team_id in d.teams or m.supervisor:
                parts.append(d.teams[m.team_id].name if m.team_id in d.teams else "")
            if m.supervisor:
                parts.append("yes")
            queues.append(":".join(parts))
        return {
            "username": e.username, "firstname": e.firstname, "lastname": e.lastname,
            "displayname": e.displayname, "email": e.email, "locale": e.locale,
            "group": d.groups[e.group_id].name if e.group_id in d.groups else "",
            "superuser": _yes(e.superuser), "supervisor": _yes(e.supervisor), "external_id": e.external_id,
            "number": e.number, "lines": ";".join(dev(i) for i in e.lines),
            "primary_extension": dev(e.primary_extension), "queues": ";".join(queues),
        }
    if kind == "callreasons":
        parent = d.callreasons.get(e.parent_id) if e.parent_id is not None else None
        return {"code": e.code, "parent": parent.code if parent else "", "name": e.name}
    if kind == "lines":
        return {"device": e.device, "name": e.name, "identifiers": ";".join(e.identifiers),
                "auto_answer": e.auto_answer}
    if kind == "queues":
        return {"asterisk_name": e.asterisk_name, "name": e.name, "type": str(e.type),
                "require_reason": _yes(e.require_reason), "record": _yes(e.record), "number": e.number}
    return {"name": e.name}


def _yes(v: bool) -> str:
    return "yes" if v else "no"
