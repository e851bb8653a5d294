"""Versioned schema migrations, one list for both back ends.

Each :class:`Migration` has a number (1, 2, 3, ... in order, never reused or
changed once released), a description and SQL statements. ``{json}``,
``{real}`` and ``{text}`` in the SQL are replaced by each back end's column
types (SQLite: ``TEXT``/``REAL``/``TEXT``; PostgreSQL:
``JSON``/``DOUBLE PRECISION``/``TEXT``). A migration that cannot be written
the same way for both may give ``sqlite`` and ``postgresql`` statement lists
instead.

On open, the store creates ``schema_version`` if missing, then applies every
migration newer than the highest version recorded there, each in its own
transaction together with its ``schema_version`` row. A database whose version
is newer than the newest migration here is refused (an older UCS must not write
to a schema it does not know).

Timestamps are seconds since the epoch (UTC) as floating-point numbers.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class Migration:
    version: int
    description: str
    statements: tuple[str, ...] = ()
    sqlite: tuple[str, ...] | None = None
    postgresql: tuple[str, ...] | None = None

    def statements_for(self, dialect: str, types: dict[str, str]) -> list[str]:
        own = getattr(self, dialect)
        statements = own if own is not None else self.statements
        return [s.format(**types) for s in statements]


SCHEMA_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version INTEGER PRIMARY KEY,"
    " description {text} NOT NULL,"
    " applied {real} NOT NULL)"
)

_PARTY_TABLE = """CREATE TABLE cdr_party (
                uniqueid {text} NOT NULL,
                device {text} NOT NULL,
                answered {real},
                created {real},
                PRIMARY KEY (uniqueid, device)
            )"""
_PARTY_INDEX = "CREATE INDEX cdr_party_device ON cdr_party (device, created)"

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "cdr and kv tables",
        (
            """CREATE TABLE cdr (
                uniqueid {text} PRIMARY KEY,
                direction {text},
                caller_number {text},
                caller_name {text},
                called_number {text},
                connected_number {text},
                connected_name {text},
                queue {text},
                answered_by {text},
                cause INTEGER,
                created {real},
                connected {real},
                disconnected {real},
                account_code {text},
                metadata {json},
                journey {json},
                data {json},
                saved {real} NOT NULL
            )""",
            "CREATE INDEX cdr_created ON cdr (created)",
            """CREATE TABLE kv (
                namespace {text} NOT NULL,
                key {text} NOT NULL,
                value {json} NOT NULL,
                updated {real} NOT NULL,
                PRIMARY KEY (namespace, key)
            )""",
        ),
    ),
    Migration(
        2,
        "cdr_party: the phones of each CDR (an agent's recent calls)",
        sqlite=(
            _PARTY_TABLE,
            _PARTY_INDEX,
            # CDRs saved before: their phones from the legs of the call kept in ``data``
            """INSERT OR IGNORE INTO cdr_party (uniqueid, device, answered, created)
               SELECT c.uniqueid, json_extract(l.value, '$.device'), MIN(json_extract(l.value, '$.answered')), c.created
               FROM cdr c, json_each(c.data, '$.legs') l
               WHERE json_valid(c.data) AND json_type(c.data, '$.legs') = 'array'
                 AND json_type(l.value, '$.device') = 'text'
               GROUP BY c.uniqueid, json_extract(l.value, '$.device')""",
        ),
        postgresql=(
            _PARTY_TABLE,
            _PARTY_INDEX,
            """INSERT INTO cdr_party (uniqueid, device, answered, created)
               SELECT c.uniqueid, l->>'device', MIN((l->>'answered')::DOUBLE PRECISION), c.created
               FROM cdr c, json_array_elements(CASE WHEN json_typeof(c.data->'legs') = 'array'
                                                    THEN c.data->'legs' END) l
               WHERE json_typeof(l->'device') = 'string'
               GROUP BY c.uniqueid, l->>'device', c.created
               ON CONFLICT DO NOTHING""",
        ),
    ),
    Migration(
        3,
        "stats table: agent and queue figures by day and 15-minute interval",
        (
            """CREATE TABLE stats (
                kind {text} NOT NULL,
                subject {text} NOT NULL,
                day {text} NOT NULL,
                slot INTEGER NOT NULL,
                figures {json} NOT NULL,
                updated {real} NOT NULL,
                PRIMARY KEY (kind, day, subject, slot)
            )""",
        ),
    ),
    Migration(
        4,
        "audit table: every administrative change (who, when, what, before and after)",
        sqlite=(
            """CREATE TABLE audit (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                at REAL NOT NULL,
                actor TEXT NOT NULL,
                source TEXT NOT NULL,
                kind TEXT NOT NULL,
                action TEXT NOT NULL,
                entity_id TEXT NOT NULL,
                before TEXT,
                after TEXT
            )""",
            "CREATE INDEX audit_at ON audit (at)",
            "CREATE INDEX audit_entity ON audit (kind, entity_id)",
        ),
        postgresql=(
            """CREATE TABLE audit (
                id BIGSERIAL PRIMARY KEY,
                at DOUBLE PRECISION NOT NULL,
                actor TEXT NOT NULL,
                source TEXT NOT NULL,
                kind TEXT NOT NULL,
                action TEXT NOT NULL,
                entity_id TEXT NOT NULL,
                before JSON,
                after JSON
            )""",
            "CREATE INDEX audit_at ON audit (at)",
            "CREATE INDEX audit_entity ON audit (kind, entity_id)",
        ),
    ),
    Migration(
        5,
        "sessions table: agent-bar sessions a node of a cluster shares, so that another node resumes them",
        (
            """CREATE TABLE sessions (
                sid_hash {text} PRIMARY KEY,
                kind {text} NOT NULL,
                user_id INTEGER NOT NULL,
                line_id INTEGER,
                state {text} NOT NULL,
                options {json} NOT NULL,
                node {text} NOT NULL,
                created {real} NOT NULL,
                seen {real} NOT NULL,
                expires {real},
                version INTEGER NOT NULL
            )""",
            "CREATE INDEX sessions_user ON sessions (user_id)",
            "CREATE INDEX sessions_node ON sessions (node, expires)",
        ),
    ),
    Migration(
        6,
        "election table: when the AMI owner of a cluster last proved its lock's session alive",
        (
            """CREATE TABLE election (
                lock {text} PRIMARY KEY,
                node {text} NOT NULL,
                proved {real} NOT NULL
            )""",
        ),
    ),
    Migration(
        7,
        "election term: each ownership of the AMI link's number, which fences a demoted owner's writes",
        ("ALTER TABLE election ADD COLUMN term INTEGER NOT NULL DEFAULT 0",),
    ),
    Migration(
        8,
        "logouts table: each user's logout, for the nodes of a cluster that missed its notice",
        (
            """CREATE TABLE logouts (
                id {text} PRIMARY KEY,
                user_id INTEGER NOT NULL,
                how {text} NOT NULL,
                reason {text} NOT NULL,
                node {text} NOT NULL,
                at {real} NOT NULL,
                written {real} NOT NULL
            )""",
            "CREATE INDEX logouts_written ON logouts (written)",
            "CREATE INDEX logouts_user ON logouts (user_id, at)",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version


def _check() -> None:
    expected = list(range(1, LATEST_VERSION + 1))
    if [m.version for m in MIGRATIONS] != expected:
        raise AssertionError(f"migrations {[m.version for m in MIGRATIONS]} are out of order; expected {expected}")


_check()
