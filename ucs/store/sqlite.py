"""The SQLite back end: one file in WAL mode, one dedicated thread.

SQLite allows one writer at a time, so one thread (and one connection) does
all the work in order; WAL mode lets other processes (a backup, ``sqlite3`` in
a shell) read while UCS writes. ``synchronous=NORMAL``: a commit survives a
crash of UCS; after a power cut the last commits may be lost but the database
stays consistent.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ucs.store.errors import StoreError
from ucs.store.url import StoreURL


class SQLiteBackend:
    dialect = "sqlite"
    types = {"json": "TEXT", "real": "REAL", "text": "TEXT"}
    threads = 1

    def __init__(self, url: StoreURL) -> None:
        self.url = url
        self.path = url.path

    def connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            directory = os.path.dirname(self.path)
            try:
                os.makedirs(directory, exist_ok=True)
            except OSError as e:
                raise StoreError(f"cannot open store {self.url}: cannot create {directory}: {e.strerror}") from None
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
            conn.execute("PRAGMA journal_mode=WAL").fetchone()
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as e:
            raise StoreError(f"cannot open store {self.url}: {e}") from None
        return conn

    @contextmanager
    def transaction(self, conn: sqlite3.Connection, *, exclusive: bool = False) -> Iterator[None]:
        conn.execute("BEGIN IMMEDIATE" if exclusive else "BEGIN")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def sql(self, statement: str) -> str:
        return statement

    def json_out(self, value: Any) -> Any:
        return json.loads(value)

    def refused(self, error: BaseException) -> bool:
        # OperationalError is the database's state (locked, disk full, no such table):
        # it passes.  The others are about the values: text the driver cannot encode
        # (an unpaired surrogate), a value SQLite rejects (too big), a binding.
        return isinstance(error, (sqlite3.DataError, sqlite3.IntegrityError, sqlite3.InterfaceError,
                                  sqlite3.ProgrammingError, UnicodeEncodeError))
