"""PostgreSQL for the tests: its URL (``UCS_TEST_POSTGRES``), a schema of one's own.

A module of its own, not ``conftest``: ``tests/lab`` has a ``conftest`` too, and
``from conftest import`` finds whichever pytest imported first.
"""

from __future__ import annotations

import os
from urllib.parse import quote

POSTGRES_URL = os.environ.get("UCS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_schema(action: str, schema: str) -> None:
    import psycopg

    try:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=10) as conn:
            if action == "create":
                conn.execute(f'CREATE SCHEMA "{schema}"')
            else:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    except psycopg.OperationalError as e:
        message = " ".join(str(e).split())
        raise RuntimeError(
            f"PostgreSQL at {POSTGRES_URL} is unreachable ({message}); start it with "
            "'pg_ctlcluster --skip-systemctl-redirect 15 main start' or set UCS_TEST_POSTGRES"
        ) from None


def with_search_path(url: str, schema: str) -> str:
    """``url`` with ``options=-csearch_path=SCHEMA`` added (libpq URI syntax)."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}', safe='')}"
