"""Shared fixtures: the repository layout, the AMI captures, and stores on both back ends.

PostgreSQL tests use ``UCS_TEST_POSTGRES`` (default
``postgresql://postgres@127.0.0.1:5432/test``), each in a fresh schema of its
own that is dropped afterwards, so parallel runs do not collide. When
PostgreSQL is unreachable those tests fail; they are never skipped
(``.ci/run`` starts PostgreSQL first).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from pgkit import POSTGRES_URL, _postgres_schema, with_search_path
from twisted.internet import threads

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's root directory."""
    return ROOT


@pytest.fixture(scope="session")
def captures_dir() -> Path:
    """``tests/data/ami-captures`` (or ``$UCS_CAPTURES_DIR``): the real Asterisk 20 captures, copied from ``../shared``."""
    path = Path(os.environ.get("UCS_CAPTURES_DIR", ROOT / "tests" / "data" / "ami-captures")).resolve()
    if not (path / "README.md").is_file():
        pytest.fail(
            f"AMI captures not found at {path}: they are part of the repository "
            "(tests/data/ami-captures); UCS_CAPTURES_DIR, if set, must name such a folder",
            pytrace=False,
        )
    return path


# Sync fixtures that wait with blockon(): an exception raised in an async
# pytest-twisted fixture's set-up corrupts pytest's fixture state and makes
# later, unrelated tests error too.


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: Any, tmp_path: Path) -> Iterator[str]:
    """A URL for an empty store: a SQLite file in ``tmp_path``, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ucs.db'}"
        return
    schema = f"ucs_test_{secrets.token_hex(6)}"
    problem = None
    try:
        pytest_twisted.blockon(threads.deferToThread(_postgres_schema, "create", schema))
    except RuntimeError as e:
        problem = str(e)
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    try:
        yield with_search_path(POSTGRES_URL, schema)
    finally:
        pytest_twisted.blockon(threads.deferToThread(_postgres_schema, "drop", schema))


@pytest.fixture
def store(store_url: str) -> Iterator[Any]:
    """An open store on each back end; closed after the test."""
    from twisted.internet import reactor

    from ucs.store import open_store

    s = pytest_twisted.blockon(open_store(store_url, reactor))
    try:
        yield s
    finally:
        pytest_twisted.blockon(s.close())
