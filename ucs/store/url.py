"""Store URLs: which back end, where, and how to show them without a password.

Accepted forms (the same as SQLAlchemy's, so operators recognise them):

- ``sqlite:///var/ucs.db`` — a file, relative to the directory UCS was started in;
- ``sqlite:////var/lib/ucs/ucs.db`` — an absolute path (four slashes);
- ``sqlite:///:memory:`` — a private in-memory database (tests, throw-away demos);
- ``postgresql://USER[:PASSWORD]@HOST[:PORT]/DB[?PARAM=VALUE&...]`` (``postgres://`` too);
  the query parameters are libpq's (``sslmode``, ``connect_timeout``,
  ``options=-csearch_path%3Ducs`` for a schema of one's own, ...).

This module imports nothing heavy: :mod:`ucs.config` checks URLs with it.
"""

from __future__ import annotations

import os
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit, urlunsplit

import attrs

from ucs.store.errors import StoreURLError

ACCEPTED = "sqlite:///PATH or postgresql://USER@HOST:PORT/DB"

SQLITE = "sqlite"
POSTGRESQL = "postgresql"


@attrs.frozen
class StoreURL:
    """A parsed store URL.

    ``scheme`` is ``"sqlite"`` or ``"postgresql"``. For SQLite, ``path`` is the
    database file (absolute) or ``":memory:"``. For PostgreSQL, ``url`` is the
    libpq connection URI as given and ``path`` is empty.
    """

    scheme: str
    url: str
    path: str = ""

    @property
    def redacted(self) -> str:
        """The URL with any password replaced by ``***``: safe for logs and errors."""
        return redact(self.url)

    def __str__(self) -> str:
        return self.redacted


def redact(url: str) -> str:
    """``url`` with the password (if any) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(
        SplitResult(parts.scheme, f"{user}:***@{netloc}", parts.path, parts.query, parts.fragment)
    )


def parse_store_url(url: object, base_dir: str | None = None) -> StoreURL:
    """Check ``url`` and say which back end it names.

    A relative SQLite path is made absolute against ``base_dir`` (default: the
    current directory). Raises :class:`StoreURLError` with a message of the form
    ``'mysql://x' is not supported; use sqlite:///PATH or postgresql://...``.
    """
    if not isinstance(url, str):
        raise StoreURLError(f"{url!r} is not a string; use {ACCEPTED}")
    shown = repr(redact(url))
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise StoreURLError(f"{shown} is not a URL; use {ACCEPTED}")
    if scheme == SQLITE:
        if not rest.startswith("/") or rest == "/":
            raise StoreURLError(
                f"{shown} has no database path; use sqlite:///RELATIVE/PATH.db, "
                "sqlite:////ABSOLUTE/PATH.db or sqlite:///:memory:"
            )
        path = unquote(rest[1:].partition("?")[0])
        if path != ":memory:":
            if path.endswith("/"):
                raise StoreURLError(f"{shown} names a directory; use sqlite:///PATH/TO/FILE.db")
            path = os.path.abspath(os.path.join(base_dir or os.getcwd(), path))
        return StoreURL(SQLITE, url, path)
    if scheme in (POSTGRESQL, "postgres"):
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as e:
            raise StoreURLError(f"{shown} is not a valid URL ({e}); use {ACCEPTED}") from None
        if not parts.hostname:
            raise StoreURLError(f"{shown} has no host; use postgresql://USER@HOST:PORT/DB")
        if not parts.path.strip("/"):
            raise StoreURLError(f"{shown} has no database name; use postgresql://USER@HOST:PORT/DB")
        if port == 0:
            raise StoreURLError(f"{shown} has port 0; use a port 1-65535 (PostgreSQL's is 5432)")
        for key, _ in parse_qsl(parts.query, keep_blank_values=True):
            if not key.isidentifier():
                raise StoreURLError(f"{shown} has a bad query parameter {key!r}; use libpq parameters")
        return StoreURL(POSTGRESQL, url)
    raise StoreURLError(f"{shown} is not supported; use {ACCEPTED}")
