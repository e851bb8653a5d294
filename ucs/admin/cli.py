"""``ucs-admin``: the directory from a shell (docs/administration.md).

    ucs-admin [-c FILE] list users
    ucs-admin add queues name=Support asterisk_name=support
    ucs-admin edit users 3 supervisor=true
    ucs-admin delete lines 7
    ucs-admin passwd alice
    ucs-admin export --dir center/            # one CSV file per kind
    ucs-admin import center/*.csv --dry-run   # what would change; nothing applied if a row is bad
    ucs-admin discover --dir found/ [--apply] # queues and lines from Asterisk (AMI)
    ucs-admin audit --kind users --limit 20

It works through a running UCS's API when one runs on the store of the
config file (logged in as ``--user``, ``admin`` by default), else on the
store directly (holding its ``admin`` lock); ``--api`` / ``--direct`` force one.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from ucs.admin.backends import AdminError, open_admin
from ucs.directory.csvio import ORDER, export, load_world, run_import
from ucs.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from ucs.directory.directory import KINDS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ucs-admin", description="Manage UCS's directory: users, lines, queues, "
                                "teams, groups, AUX and call reasons; CSV import/export; discovery from Asterisk.")
    p.add_argument("-c", "--config", default=None,
                   help=f"UCS's config file, as for twistd ucs (default {DEFAULT_CONFIG_PATH} if present)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--api", dest="mode", action="store_const", const="api",
                      help="go through the running UCS's API (the default when one runs on the store)")
    mode.add_argument("--direct", dest="mode", action="store_const", const="direct",
                      help="write the store directly (only while no UCS runs on it)")
    p.add_argument("--url", help="the running UCS's WebSocket URL (default: what it told the store, or [web])")
    p.add_argument("--user", default="admin", help="superuser to log in to the API as (default admin)")
    p.add_argument("--password-file", help="file holding that user's password (else [auth] admin_password, "
                   "$UCS_ADMIN_PASSWORD, or asked)")
    sub = p.add_subparsers(dest="command", required=True)
    kinds = list(KINDS)
    s = sub.add_parser("list", help="list the entities of a kind (JSON lines)")
    s.add_argument("kind", choices=kinds)
    s = sub.add_parser("add", help="add an entity: FIELD=VALUE ... (a VALUE that is JSON is read as JSON)")
    s.add_argument("kind", choices=kinds)
    s.add_argument("fields", nargs="+", metavar="FIELD=VALUE")
    s = sub.add_parser("edit", help="change some fields of an entity")
    s.add_argument("kind", choices=kinds)
    s.add_argument("id", type=int)
    s.add_argument("fields", nargs="+", metavar="FIELD=VALUE")
    s = sub.add_parser("delete", help="delete an entity")
    s.add_argument("kind", choices=kinds)
    s.add_argument("id", type=int)
    s = sub.add_parser("passwd", help="set a user's password (asked twice, or --new-password-file)")
    s.add_argument("username")
    s.add_argument("--new-password-file")
    s = sub.add_parser("export", help="the directory as CSV, one file per kind")
    s.add_argument("kinds", nargs="*", metavar="KIND", help=f"{', '.join(kinds)} (default: every kind)")
    s.add_argument("--dir", help="write KIND.csv files here (else one kind to stdout)")
    s = sub.add_parser("import", help="add and change entities from CSV files named KIND.csv")
    s.add_argument("files", nargs="+")
    s.add_argument("--kind", choices=kinds, help="the kind of a single file not named KIND.csv")
    s.add_argument("--dry-run", action="store_true", help="show what would change; change nothing")
    s = sub.add_parser("discover", help="queues and lines from Asterisk over AMI ([ami] of the config)")
    s.add_argument("--dir", help="write queues.csv and lines.csv here (else print them)")
    s.add_argument("--apply", action="store_true", help="import what was found")
    s.add_argument("--dry-run", action="store_true", help="show what an import would change")
    s.add_argument("--ami", metavar="HOST:PORT", help="another AMI address than [ami]'s")
    s = sub.add_parser("audit", help="the audit log, newest first")
    for name in ("kind", "actor", "action", "source", "entity"):
        s.add_argument(f"--{name}")
    s.add_argument("--since", type=float, help="epoch seconds")
    s.add_argument("--until", type=float, help="epoch seconds")
    s.add_argument("--limit", type=int, default=50)
    s.add_argument("--before", type=int, help="the id the previous page said to continue before")
    return p


def _fields(items: Sequence[str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise AdminError(f"{item!r}: give FIELD=VALUE")
        try:
            data[name] = json.loads(value)
        except ValueError:
            data[name] = value
    return data


def _password(args: argparse.Namespace) -> str | None:
    if args.password_file:
        return Path(args.password_file).read_text().strip()
    return os.environ.get("UCS_ADMIN_PASSWORD")


def _kind_of(path: str, given: str | None) -> str:
    if given:
        return given
    stem = Path(path).stem.lower()
    if stem not in KINDS:
        raise AdminError(f"{path}: name the file after its kind ({', '.join(KINDS)}).csv, or give --kind")
    return stem


async def _import(admin: Any, files: dict[str, tuple[str, str]], dry_run: bool, out: TextIO) -> int:
    """Tried on a copy first; applied only when every row is good."""
    changes, problems = await run_import(files, await load_world(admin), None)
    for p in problems:
        print(p, file=out)
    if problems:
        print(f"{len(problems)} problem(s); nothing was changed", file=out)
        return 1
    for c in changes:
        print(("would " if dry_run else "") + c.describe(), file=out)
    if dry_run or not changes:
        print(f"{len(changes)} change(s)" + (" would be made" if dry_run else "; nothing to do"), file=out)
        return 0
    made = await admin.import_files(files)  # all or nothing; a row refused now raises, naming it
    print(f"{made} change(s) made ({admin.mode})", file=out)
    return 0


async def run(argv: Sequence[str], reactor: Any, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"ucs-admin: {e}", file=err)
        return 1
    admin: Any = None
    try:
        if args.command == "discover" and not (args.apply or args.dry_run):
            return await _discover(args, config, reactor, None, out)
        admin = await open_admin(config, reactor, mode=args.mode or "auto", url=args.url, username=args.user,
                                 password=_password(args))
        return await _command(args, config, reactor, admin, out)
    except AdminError as e:
        print(f"ucs-admin: {e}", file=err)
        for field, problem in e.fields.items():
            print(f"  {field}: {problem}", file=err)
        return 1
    except OSError as e:
        print(f"ucs-admin: {e}", file=err)
        return 1
    finally:
        if admin is not None:
            await admin.close()


async def _command(args: argparse.Namespace, config: Any, reactor: Any, admin: Any, out: TextIO) -> int:
    cmd = args.command
    if cmd == "list":
        for e in await admin.list(args.kind):
            print(json.dumps(e, ensure_ascii=False, sort_keys=True), file=out)
    elif cmd == "add":
        print(json.dumps(await admin.add(args.kind, _fields(args.fields)), ensure_ascii=False), file=out)
    elif cmd == "edit":
        print(json.dumps(await admin.edit(args.kind, args.id, _fields(args.fields)), ensure_ascii=False), file=out)
    elif cmd == "delete":
        await admin.delete(args.kind, args.id)
        print(f"deleted {args.kind[:-1]} {args.id}", file=out)
    elif cmd == "passwd":
        user = next((u for u in await admin.list("users") if u["username"].lower() == args.username.lower()), None)
        if user is None:
            raise AdminError(f"there is no user {args.username!r}")
        if args.new_password_file:
            password = Path(args.new_password_file).read_text().strip()
        else:
            password = getpass.getpass(f"new password of {user['username']}: ")
            if getpass.getpass("again: ") != password:
                raise AdminError("the two passwords differ; nothing changed")
        await admin.edit("users", user["id"], {"password": password})
        print(f"password of {user['username']} set", file=out)
    elif cmd == "export":
        kinds = args.kinds or list(ORDER)
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise AdminError(f"{', '.join(unknown)}: not a kind; kinds: {', '.join(KINDS)}")
        world = await load_world(admin)
        if args.dir:
            Path(args.dir).mkdir(parents=True, exist_ok=True)
            for kind in kinds:
                (Path(args.dir) / f"{kind}.csv").write_text(export(kind, world), encoding="utf-8")
            print(f"wrote {', '.join(k + '.csv' for k in kinds)} to {args.dir}", file=out)
        elif len(kinds) != 1:
            raise AdminError("give one kind to export to stdout, or --dir")
        else:
            out.write(export(kinds[0], world))
    elif cmd == "import":
        if args.kind and len(args.files) > 1:
            raise AdminError("--kind is for a single file")
        files: dict[str, tuple[str, str]] = {}
        for path in args.files:
            kind = _kind_of(path, args.kind)
            if kind in files:
                raise AdminError(f"{path}: {files[kind][0]} is the {kind} file already; one file per kind")
            files[kind] = (path, Path(path).read_text(encoding="utf-8-sig"))
        return await _import(admin, files, args.dry_run, out)
    elif cmd == "discover":
        return await _discover(args, config, reactor, admin, out)
    elif cmd == "audit":
        filters = {k: v for k, v in (("kind", args.kind), ("actor", args.actor), ("action", args.action),
                                     ("source", args.source), ("entity_id", args.entity),
                                     ("since", args.since), ("until", args.until)) if v is not None}
        page = await admin.audit(filters, args.limit, args.before)
        for e in page["entries"]:
            print(json.dumps(e, ensure_ascii=False, sort_keys=True), file=out)
        if page["next"] is not None:
            print(f"# more: --before {page['next']}", file=out)
    return 0


async def _discover(args: argparse.Namespace, config: Any, reactor: Any, admin: Any, out: TextIO) -> int:
    import csv
    import io

    from ucs.admin.discover import DISCOVERED, discover

    host = port = None
    if args.ami:
        host, _, p = args.ami.rpartition(":")
        port = int(p)
    try:
        found = await discover(config, reactor, host, port)
    except Exception as e:
        raise AdminError(f"discovery over AMI failed: {e}") from None
    files: dict[str, tuple[str, str]] = {}
    for kind in ("queues", "lines"):
        buf = io.StringIO()
        writer = csv.DictWriter(buf, DISCOVERED[kind], lineterminator="\n")
        writer.writeheader()
        writer.writerows(found[kind])
        name = f"{kind}.csv"
        if args.dir:
            Path(args.dir).mkdir(parents=True, exist_ok=True)
            name = str(Path(args.dir) / name)
            Path(name).write_text(buf.getvalue(), encoding="utf-8")
        elif admin is None:
            out.write(f"# {kind}.csv\n{buf.getvalue()}")
        files[kind] = (name, buf.getvalue())
    print(f"found {len(found['queues'])} queue(s), {len(found['lines'])} line(s)"
          + (f"; wrote queues.csv and lines.csv to {args.dir}" if args.dir else ""), file=out)
    if admin is None:
        return 0
    return await _import(admin, files, args.dry_run, out)


def main(argv: Sequence[str] | None = None) -> None:
    from twisted.internet import defer, task

    def go(reactor: Any) -> Any:
        async def body() -> None:
            code = await run(sys.argv[1:] if argv is None else argv, reactor)
            if code:
                raise SystemExit(code)

        return defer.ensureDeferred(body())

    task.react(go)
