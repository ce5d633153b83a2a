"""Service commands: ``api``, ``worker``, ``db``, ``users``, ``keys``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import ipaddress
import logging
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from config.errors import ConfigError
from config.pipeline import PipelineConfig
from config.settings import Settings
from sinks.redis_streams import DEFAULT_STREAM_KEY, RedisStreamsSinkConfig
from sinks.relay import key_pattern
from sinks.store import ApiKey, AuditEntry, Database, SchemaBehind, User, upgrade
from sinks.store.database import head_revision
from sinks.store.models import ROLES
from stream.sources_cli import add_source_options, check_sources, pipeline_config

logger = logging.getLogger("heritage_audio")

GRACEFUL_S = 20
"""Seconds open requests get at shutdown (inside the units' 30 s stop timeout)."""
EXIT_FAILURE = 1


def add_parsers(sub: Any) -> None:
    """Register the service subcommands on the top-level parser."""
    run = sub.add_parser(
        "run",
        help="capture, analyse and serve the API, live events and dashboard on one port",
        description="All in one process: sources, detectors, HTTP API, WebSocket and dashboard.",
    )
    add_source_options(run)
    _add_listen_options(run)

    api = sub.add_parser(
        "api",
        help="serve the HTTP API and the WebSocket hub (no capture)",
        description="The file-analysis API, MAXXI endpoints, health, metrics and WebSocket "
        "hub. The database schema must be current (`heritage-audio db upgrade`). With "
        "KAFKA_BOOTSTRAP_SERVERS set, it follows $KAFKA_TOPIC_PREFIX.aggregates (written by "
        "`heritage-audio aggregate`) into the database and serves it at /api/v1/sites.",
    )
    _add_listen_options(api)

    worker = sub.add_parser(
        "worker",
        help="execute file-analysis jobs from the Redis queue (Celery)",
        description="A Celery worker for uploaded files. Needs REDIS_HOST; run more to scale out.",
    )
    worker.add_argument(
        "--concurrency", type=int, help="jobs run at once (default: $WORKER_CONCURRENCY)"
    )
    worker.add_argument("--name", help="worker name (default: heritage@<hostname>)")

    db = sub.add_parser("db", help="database schema migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_up = db_sub.add_parser("upgrade", help="apply migrations up to the newest (or --revision)")
    db_up.add_argument("--revision", default="head", help="target revision (default: head)")
    db_sub.add_parser("current", help="print the schema revision and the one this code needs")

    users = sub.add_parser("users", help="manage people who log in")
    users_sub = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    add = users_sub.add_parser(
        "add", help="add a user; the password is read from stdin (or asked for on a terminal)"
    )
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, required=True)
    users_sub.add_parser("list", help="list users and their roles")
    for action, text in (
        ("remove", "delete a user; their tokens stop working"),
        ("disable", "refuse a user's logins and tokens, keeping the account"),
        ("enable", "let a disabled user log in again (their old tokens stay revoked)"),
        ("logout-all", "revoke every token the user holds; they log in again"),
        ("password", "set a user's password (stdin or a prompt); their tokens are revoked"),
    ):
        users_sub.add_parser(action, help=text).add_argument("name")

    keys = sub.add_parser("keys", help="manage API keys for machines")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_sub.add_parser("create", help="create a key; its secret is printed once")
    create.add_argument("name")
    create.add_argument("--role", choices=ROLES, default="integration")
    keys_sub.add_parser("list", help="list keys (never their secrets)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key")
    revoke.add_argument("name")


def _add_listen_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        help="address to listen on (default: $HOST, else 127.0.0.1 in development, 0.0.0.0)",
    )
    parser.add_argument("--port", type=int, help="port to listen on (default: $PORT)")
    parser.add_argument(
        "--insecure-open",
        action="store_true",
        help="in development, serve /ws/events without a token on a non-loopback address",
    )


def live_open(settings: Settings, host: str, insecure_open: bool) -> bool:
    """Whether ``/ws/events`` may be read without a token.

    Only in development, and only on a loopback address unless ``--insecure-open``
    says otherwise (with a warning): a development server on the network must not
    stream a museum's microphones to anyone who asks.
    """
    if settings.ENVIRONMENT != "development":
        if insecure_open:
            logger.warning("--insecure-open is ignored outside development")
        return False
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback:
        return True
    if insecure_open:
        logger.warning(
            "--insecure-open: anyone who can reach %s may watch live events without a token",
            host,
        )
        return True
    logger.warning(
        "development server on %s: /ws/events asks for a token (?token=...); "
        "--insecure-open serves it without one",
        host,
    )
    return False


async def _checked_database(settings: Settings) -> Database:
    """The database, if it answers and its schema is current; else a clear error."""
    db = Database(settings, pooled=False)
    try:
        await db.check_schema()
    except SchemaBehind as exc:
        await db.close()
        raise ConfigError(str(exc)) from None
    except Exception as exc:
        await db.close()
        raise ConfigError(f"database {db.engine.url.render_as_string()}: {exc}") from None
    return db


async def serve(
    settings: Settings,
    config: PipelineConfig,
    host: str,
    port: int,
    *,
    migrate: bool = True,
    stop_with_sources: bool = True,
    relay_pattern: str | None = None,
    insecure_open: bool = False,
) -> int:
    """Serve the app until interrupted (or, with ``stop_with_sources``, until sources end)."""
    import asyncio

    import uvicorn

    from api.app import create_app, uvicorn_config
    from config.private import restrict_umask
    from stream.runtime import Runtime

    restrict_umask()  # the database, the signing key, spools and uploads: this user's alone
    runtime = Runtime(config, settings)
    app = create_app(
        settings, runtime, migrate=migrate, relay_pattern=relay_pattern,
        live_open=live_open(settings, host, insecure_open),
    )  # fmt: skip
    server = uvicorn.Server(
        uvicorn_config(
            app,
            host,
            port,
            log_config=None,
            ws_ping_interval=20,
            # Inside the units' 30 s stop timeout: requests still open then are cut.
            timeout_graceful_shutdown=GRACEFUL_S,
        )
    )
    app.state.server = server  # open event streams end when it starts shutting down

    async def stop_when_sources_end() -> None:
        await runtime.wait_finished()
        logger.info("all sources ended; shutting down")
        await runtime.stop()  # drains the WebSocket clients before the server closes them
        await asyncio.sleep(0.5)
        server.should_exit = True

    watcher = asyncio.create_task(
        stop_when_sources_end() if stop_with_sources else asyncio.Event().wait()
    )
    shown = "localhost" if host in ("0.0.0.0", "::") else host  # noqa: S104
    logger.info("dashboard: http://%s:%d/", shown, port)
    try:
        await server.serve()
    finally:
        watcher.cancel()
    return EXIT_FAILURE if any(r.state == "error" for r in runtime.runners) else 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    config = pipeline_config(args, settings)
    check_sources(config)
    return asyncio.run(
        serve(
            settings,
            config,
            args.host or settings.bind_host,
            args.port or settings.PORT,
            insecure_open=args.insecure_open,
        )
    )


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    from config.pipeline import load_pipeline_config

    asyncio.run(_checked_database(settings)).engine.sync_engine.dispose()
    config = load_pipeline_config(settings.HERITAGE_CONFIG)
    # The daemons' streams: the template of a configured Redis sink, else the default.
    template = next(
        (s.stream_key for s in config.sinks if isinstance(s, RedisStreamsSinkConfig)),
        DEFAULT_STREAM_KEY,
    )
    config = config.model_copy(update={"sources": [], "sinks": []})
    return asyncio.run(
        serve(
            settings, config, args.host or settings.bind_host, args.port or settings.PORT,
            migrate=False, stop_with_sources=False, relay_pattern=key_pattern(template),
            insecure_open=args.insecure_open,
        )
    )  # fmt: skip


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.redis_enabled:
        raise ConfigError(
            "REDIS_HOST is not set: without Redis, jobs run inside `heritage-audio api` "
            "(or `run`); set REDIS_HOST to run separate workers"
        )
    asyncio.run(_checked_database(settings)).engine.sync_engine.dispose()
    from api.worker import run_worker

    concurrency = args.concurrency or settings.WORKER_CONCURRENCY
    return run_worker(settings, concurrency, args.name or f"heritage@{socket.gethostname()}")


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    if args.db_command == "upgrade":
        upgrade(settings, args.revision)
        print(f"database schema at {args.revision}")
        return 0

    async def current() -> str | None:
        db = Database(settings, pooled=False)
        try:
            return await db.current_revision()
        finally:
            await db.close()

    now = asyncio.run(current())
    head = head_revision(settings)
    print(f"current: {now or 'empty'}\nneeded:  {head}")
    return 0 if now == head else 1


def _read_password(name: str) -> str:
    if sys.stdin.isatty():
        first = getpass.getpass(f"password for {name}: ")
        if first != getpass.getpass("again: "):
            raise ConfigError("the passwords differ")
        password = first
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    from api.security import MIN_PASSWORD

    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"a password needs at least {MIN_PASSWORD} characters")
    return password


@asynccontextmanager
async def _admin_session(settings: Settings) -> AsyncIterator[AsyncSession]:
    """One transaction on a current schema, for an administrative command."""
    db = await _checked_database(settings)
    try:
        async with db.session() as session:
            yield session
    finally:
        await db.close()


async def _users(args: argparse.Namespace, settings: Settings) -> int:
    from api.security import hash_password

    async with _admin_session(settings) as session:
        if args.users_command == "add":
            if await session.scalar(select(User).where(User.username == args.name)):
                raise ConfigError(f"user {args.name!r} exists")
            password_hash = hash_password(_read_password(args.name))
            session.add(User(username=args.name, password_hash=password_hash, role=args.role))
            session.add(AuditEntry(action="user.added", actor="cli", target=args.name))
            print(f"added {args.name} ({args.role})")
            return 0
        if args.users_command == "list":
            for user in await session.scalars(select(User).order_by(User.username)):
                state = " (disabled)" if user.disabled else ""
                print(f"{user.username}\t{user.role}{state}")
            return 0
        found = await session.scalar(select(User).where(User.username == args.name))
        if found is None:
            raise ConfigError(f"no user {args.name!r}")
        done = _USER_CHANGES[args.users_command](found)
        if args.users_command == "remove":
            await session.delete(found)
        elif args.users_command == "password":
            found.password_hash = hash_password(_read_password(args.name))
        session.add(AuditEntry(action=f"user.{args.users_command}", actor="cli", target=args.name))
        print(f"{done} {args.name}")
    return 0


def _removed(user: User) -> str:
    return "removed"


def _disable(user: User) -> str:
    user.disabled = True
    user.token_version += 1  # so enabling again does not bring old tokens back
    return "disabled"


def _enable(user: User) -> str:
    user.disabled = False
    return "enabled"


def _logout_all(user: User) -> str:
    user.token_version += 1
    return "revoked every token of"


def _new_password(user: User) -> str:
    user.token_version += 1
    return "changed the password of"


# Each returns the confirmation's verb. Every change but enabling revokes the user's
# tokens: the API sees it within IDENTITY_CACHE_SECONDS.
_USER_CHANGES: dict[str, Callable[[User], str]] = {
    "remove": _removed,
    "disable": _disable,
    "enable": _enable,
    "logout-all": _logout_all,
    "password": _new_password,
}


async def _keys(args: argparse.Namespace, settings: Settings) -> int:
    from api.security import new_api_key

    async with _admin_session(settings) as session:
        if args.keys_command == "create":
            if await session.scalar(select(ApiKey).where(ApiKey.name == args.name)):
                raise ConfigError(f"key {args.name!r} exists")
            secret, prefix, key_hash = new_api_key()
            session.add(ApiKey(name=args.name, prefix=prefix, key_hash=key_hash, role=args.role))
            session.add(AuditEntry(action="key.created", actor="cli", target=args.name))
            print(secret)
            print(f"(key {args.name!r}, role {args.role}: shown once, store it now)",
                  file=sys.stderr)  # fmt: skip
        elif args.keys_command == "list":
            for key in await session.scalars(select(ApiKey).order_by(ApiKey.name)):
                used = key.last_used_at.isoformat() if key.last_used_at else "never"
                state = "revoked" if key.revoked else "active"
                print(f"{key.name}\t{key.role}\t{key.prefix}...\t{state}\tlast used {used}")
        else:
            target = await session.scalar(select(ApiKey).where(ApiKey.name == args.name))
            if target is None:
                raise ConfigError(f"no key {args.name!r}")
            target.revoked = True
            session.add(AuditEntry(action="key.revoked", actor="cli", target=args.name))
            print(f"revoked {args.name}")
    return 0


def cmd_users(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_users(args, settings))


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_keys(args, settings))


COMMANDS = {
    "run": cmd_run,
    "api": cmd_api,
    "worker": cmd_worker,
    "db": cmd_db,
    "users": cmd_users,
    "keys": cmd_keys,
}
