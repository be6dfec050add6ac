"""``openglm accounts | keys | usage | ledger | db``: the operator's commands, straight on the store.

They use the same settings as the server (``OPENGLM_DATA_DIR`` / ``OPENGLM_DATABASE_URL``), so they work while
the server runs. ``keys create`` prints the new key alone on stdout (``KEY=$(openglm keys create ...)``).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ..config import Settings
from ..errors import InternalError, InvalidFieldError, OpenGLMError
from ..files.quota import UNLIMITED, MiB, StorageQuota, quota_bytes_of
from ..store.db import open_database
from ..store.private import private_directory
from . import ledger as ledger_module
from . import reservations
from .limits import KeyLimits
from .money import format_yuan, to_nano
from .passwords import hash_password
from .sealing import SecretBox, load_master_key
from .spool import UsageSpool, spool_path
from .store import AccountStore
from .usage import usage_summary

DEFAULT_ACCOUNT = "default"
OPERATORS_ACCOUNT = "operators"
Command = Callable[[AccountStore, argparse.Namespace], Awaitable[None]]


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[AccountStore]:
    private_directory(settings.data_dir)  # the CLI may be the first to make it
    db = await open_database(settings.resolved_database_url())
    try:
        store = AccountStore(
            db,
            SecretBox(load_master_key(settings.secret_key, settings.secret_key_file, settings.data_dir)),
            free_grant=to_nano(settings.free_grant),
        )
        await store.check_master_key()
        yield store
    finally:
        await db.close()


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


# accounts


async def accounts_create(store: AccountStore, args: argparse.Namespace) -> None:
    grant = None if args.grant is None else to_nano(args.grant)
    account = await store.create_account(args.name, grant=grant)
    view = await store.account_view(account.id)
    print(f"{account.id}  {account.name}  balance {format_yuan(view.balance)} CNY")


async def accounts_list(store: AccountStore, args: argparse.Namespace) -> None:
    rows = [
        (v.account.id, v.account.name, v.account.status, format_yuan(v.balance), _when(v.account.created_at))
        for v in await store.accounts()
    ]
    print(table(("id", "name", "status", "balance_cny", "created"), rows))


async def accounts_show(store: AccountStore, args: argparse.Namespace) -> None:
    view = await store.account_view(args.account)
    a = view.account
    print(f"{a.id}  {a.name}  {a.status}  balance {format_yuan(view.balance)} CNY")
    for user in await store.users(a.id):
        print(f"  user {user.id}  {user.name}  {user.email or ''}".rstrip())


async def accounts_status(store: AccountStore, args: argparse.Namespace) -> None:
    account = await store.set_account_status(args.account, "active" if args.action == "enable" else "disabled")
    print(f"{account.id}  {account.name}  {account.status}")


async def accounts_credit(store: AccountStore, args: argparse.Namespace) -> None:
    entry = await store.add_entry(args.account, args.action, to_nano(args.amount), args.note)
    view = await store.account_view(args.account)
    balance = format_yuan(view.balance)
    print(f"ledger entry {entry.id}: {entry.kind} {format_yuan(entry.amount)} CNY; balance {balance} CNY")


async def accounts_storage(store: AccountStore, args: argparse.Namespace) -> None:
    account = await store.account(args.account)
    quota = StorageQuota(store.db, Settings().storage_quota_bytes())
    if args.default:
        usage = await quota.set_quota(account.id, None)
    elif args.quota_mb is not None:
        if args.quota_mb < UNLIMITED:
            raise InvalidFieldError("--quota-mb must be 0 or more, or -1 for unlimited")
        usage = await quota.set_quota(account.id, quota_bytes_of(args.quota_mb))
    else:
        usage = await quota.usage(account.id)
    limit = "unlimited" if usage.quota_bytes is None else f"{usage.quota_bytes / MiB:.1f} MB"
    whose = "its own quota" if usage.account_quota else "the default quota"
    print(f"{account.id}  {account.name}  storage {usage.used_bytes / MiB:.1f} MB of {limit} ({whose})")


async def accounts_add_user(store: AccountStore, args: argparse.Namespace) -> None:
    user = await store.create_user(args.account, args.name, args.email)
    print(f"{user.id}  {user.name}")


def read_password() -> str:
    """Asked for twice on a terminal; otherwise the first line of stdin (``echo "$PW" | openglm ...``)."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("password: ")
    if getpass.getpass("again: ") != password:
        raise ValueError("the two passwords differ")
    return password


async def accounts_set_password(store: AccountStore, args: argparse.Namespace) -> None:
    hashed = None if args.clear else hash_password(read_password())
    user = await store.set_password(args.account, args.email, hashed)
    print(f"{user.id}  {user.email}  {'can sign in' if hashed else 'cannot sign in'}")


# keys


def _expiry(args: argparse.Namespace) -> datetime | None:
    if args.expires_in is not None:
        return datetime.now(UTC) + timedelta(days=args.expires_in)
    if args.expires_at is not None:
        value = datetime.fromisoformat(args.expires_at)
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def _limits(args: argparse.Namespace) -> KeyLimits | None:
    if args.concurrency is None and args.rpm is None and args.daily_tokens is None:
        return None
    return KeyLimits(concurrency=args.concurrency, rpm=args.rpm, daily_tokens=args.daily_tokens)


async def keys_create(store: AccountStore, args: argparse.Namespace) -> None:
    account = args.account
    if account is None:
        name, grant = (OPERATORS_ACCOUNT, 0) if args.admin else (DEFAULT_ACCOUNT, None)
        account = (await store.ensure_account(name, grant=grant)).id
    key, full = await store.create_key(
        account,
        name=args.name,
        scope="admin" if args.admin else "user",
        user_id=args.user,
        expires_at=_expiry(args),
        limits=_limits(args),
    )
    print(full)
    print(
        f"created {key.scope} key {key.id} for account {key.account_id}; the secret is not shown again", file=sys.stderr
    )


async def keys_list(store: AccountStore, args: argparse.Namespace) -> None:
    rows = [
        (
            v.key.id,
            f"…{v.key.secret_hint}",
            v.account_name,
            v.key.name,
            v.key.scope,
            v.key.status,
            _when(v.key.expires_at),
            _when(v.last_used_at),
        )
        for v in await store.keys(args.account, include_deleted=args.all)
    ]
    print(table(("id", "secret", "account", "name", "scope", "status", "expires", "last_used"), rows))


async def keys_status(store: AccountStore, args: argparse.Namespace) -> None:
    if args.action == "delete":
        key = await store.delete_key(args.key_id)
    else:
        key = await store.set_key_status(args.key_id, "active" if args.action == "enable" else "disabled")
    print(f"{key.id}  {key.status}")


async def keys_limits(store: AccountStore, args: argparse.Namespace) -> None:
    current = await store.key(args.key_id)
    limits = KeyLimits(
        concurrency=current.max_concurrency if args.concurrency is None else args.concurrency,
        rpm=current.rpm if args.rpm is None else args.rpm,
        daily_tokens=current.daily_tokens if args.daily_tokens is None else args.daily_tokens,
    )
    key = await store.update_key(args.key_id, limits=limits)
    print(f"{key.id}  concurrency={key.max_concurrency} rpm={key.rpm} daily_tokens={key.daily_tokens}")


# usage and ledger


async def usage(store: AccountStore, args: argparse.Namespace) -> None:
    account_id = None if args.account is None else (await store.account(args.account)).id
    rows = await usage_summary(
        store.db, by=args.by, account_id=account_id, key_id=args.key, since=args.since, until=args.until
    )
    out = [(r.group, r.requests, r.prompt_tokens, r.completion_tokens, r.images, format_yuan(r.cost)) for r in rows]
    print(table((args.by, "requests", "prompt_tokens", "completion_tokens", "images", "cost_cny"), out))
    print(f"total {format_yuan(sum(r.cost for r in rows))} CNY")


async def ledger(store: AccountStore, args: argparse.Namespace) -> None:
    view = await store.account_view(args.account)
    entries = await store.ledger(args.account, limit=args.limit)
    rows = [(e.id, _when(e.created_at), e.kind, format_yuan(e.amount), e.usage_id or "", e.note) for e in entries]
    print(table(("id", "time", "kind", "amount_cny", "usage_id", "note"), rows))
    print(f"balance {format_yuan(view.balance)} CNY")


async def db_upgrade(store: AccountStore, args: argparse.Namespace) -> None:
    print(f"database is at the latest schema ({store.db.dialect})")


async def db_verify(store: AccountStore, args: argparse.Namespace) -> None:
    """Every kept balance against the sum of its ledger entries, every kept reservation total against its
    reservations, every usage record against its charge, and no settled call left outside the database."""
    async with store.db.read() as session:
        mismatches = await ledger_module.verify(session)
        held = await reservations.verify(await session.connection())
        gaps = await ledger_module.gaps(session)
    pending = UsageSpool(spool_path(Settings().data_dir)).pending()
    for m in mismatches:
        print(f"{m.account_id}: kept {format_yuan(m.kept)} CNY, ledger sums to {format_yuan(m.summed)} CNY")
    for r in held:
        print(
            f"{r.account_id}: {format_yuan(r.kept)} CNY kept as reserved, reservations sum to {format_yuan(r.summed)}"
        )
    for gap in gaps:
        print(f"{gap.ref}: {gap.problem}")
    if pending:
        print(f"{pending} settled call(s) are in the usage spool, not in the database: run `openglm db replay-usage`")
    problems = [
        f"{count} {what}"
        for count, what in (
            (len(mismatches), "balance(s) differ from the ledger"),
            (len(held), "reservation total(s) differ from their reservations"),
            (len(gaps), "usage record(s) and charge(s) do not pair"),
            (pending, "settled call(s) waiting in the usage spool"),
        )
        if count
    ]
    if problems:
        raise InternalError("; ".join(problems))
    print("every balance equals the sum of its ledger entries")
    print("every reservation total equals its reservations")
    print("every usage record has its charge and every charge its record")
    print("no settled call is waiting outside the database")


async def db_replay_usage(store: AccountStore, args: argparse.Namespace) -> None:
    """Write the calls the server settled but could not record (the usage spool) into the database."""
    spool = UsageSpool(spool_path(Settings().data_dir))
    replayed = await spool.replay(store.db)
    print(f"recorded {replayed.recorded}, already recorded {replayed.present}, still failing {replayed.kept}")
    if replayed.kept:
        raise InternalError(f"{replayed.kept} spooled call(s) could not be recorded; they stay in {spool.path}")


def _run(command: Command) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        async def main() -> None:
            async with open_store(Settings()) as store:
                await command(store, args)

        try:
            asyncio.run(main())
        except (OpenGLMError, ValueError) as exc:
            print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
            return 1
        return 0

    return run


def add_parsers(sub: Any) -> None:
    _account_parsers(sub.add_parser("accounts", help="accounts (organisations), their users and balances"))
    _key_parsers(sub.add_parser("keys", help="API keys: create, list, disable, enable, delete, limits"))
    use = sub.add_parser("usage", help="usage per key, model or day")
    use.add_argument("--account")
    use.add_argument("--key")
    use.add_argument("--by", choices=("day", "model", "key", "agent"), default="day")
    use.add_argument("--since", type=date.fromisoformat, help="first UTC day, YYYY-MM-DD")
    use.add_argument("--until", type=date.fromisoformat, help="last UTC day, YYYY-MM-DD")
    use.set_defaults(func=_run(usage))
    led = sub.add_parser("ledger", help="an account's ledger entries and balance")
    led.add_argument("account")
    led.add_argument("--limit", type=int, default=50)
    led.set_defaults(func=_run(ledger))
    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply migrations").set_defaults(func=_run(db_upgrade))
    db_sub.add_parser(
        "verify", help="check balances, reservations and usage records against the ledger, and the usage spool"
    ).set_defaults(func=_run(db_verify))
    db_sub.add_parser(
        "replay-usage", help="record the calls the server settled but could not write (the usage spool)"
    ).set_defaults(func=_run(db_replay_usage))


def _account_parsers(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create")
    create.add_argument("name")
    create.add_argument("--grant", help="CNY granted now (default: OPENGLM_FREE_GRANT)")
    create.set_defaults(func=_run(accounts_create))
    sub.add_parser("list").set_defaults(func=_run(accounts_list))
    for name, handler in (("show", accounts_show), ("disable", accounts_status), ("enable", accounts_status)):
        command = sub.add_parser(name)
        command.add_argument("account", help="id or name")
        command.set_defaults(func=_run(handler))
    for name in ("topup", "grant", "refund", "adjustment"):
        command = sub.add_parser(name, help=f"add a {name} ledger entry")
        command.add_argument("account", help="id or name")
        command.add_argument("amount", help="CNY")
        command.add_argument("--note", default="")
        command.set_defaults(func=_run(accounts_credit))
    storage = sub.add_parser("storage", help="the bytes an account keeps in files, and its storage quota")
    storage.add_argument("account", help="id or name")
    quota = storage.add_mutually_exclusive_group()
    quota.add_argument("--quota-mb", type=int, help="set the account's own quota (MB; -1: unlimited, 0: nothing)")
    quota.add_argument("--default", action="store_true", help="back to the default (OPENGLM_STORAGE_QUOTA_MB)")
    storage.set_defaults(func=_run(accounts_storage))
    user = sub.add_parser("add-user")
    user.add_argument("account")
    user.add_argument("name")
    user.add_argument("--email")
    user.set_defaults(func=_run(accounts_add_user))
    password = sub.add_parser(
        "set-password", help="a user's web sign-in password, read from stdin or asked for (the user is created if new)"
    )
    password.add_argument("account", help="id or name")
    password.add_argument("email", help="the user's email (or user id)")
    password.add_argument("--clear", action="store_true", help="remove the password: no more web sign-in")
    password.set_defaults(func=_run(accounts_set_password))


def _key_parsers(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="print a new id.secret key (shown once)")
    create.add_argument(
        "--account",
        help=f"id or name (default: {DEFAULT_ACCOUNT!r}, or {OPERATORS_ACCOUNT!r} for --admin; created if needed)",
    )
    create.add_argument("--name", default="")
    create.add_argument("--admin", action="store_true", help="an admin key (admin API only)")
    create.add_argument("--user", help="user id within the account")
    expiry = create.add_mutually_exclusive_group()
    expiry.add_argument("--expires-in", type=float, metavar="DAYS")
    expiry.add_argument("--expires-at", metavar="ISO-8601")
    _limit_arguments(create)
    create.set_defaults(func=_run(keys_create))
    listing = sub.add_parser("list")
    listing.add_argument("--account")
    listing.add_argument("--all", action="store_true", help="include deleted keys")
    listing.set_defaults(func=_run(keys_list))
    for name in ("disable", "enable", "delete"):
        command = sub.add_parser(name)
        command.add_argument("key_id")
        command.set_defaults(func=_run(keys_status))
    limits = sub.add_parser("limits", help="set a key's limits (0 = unlimited)")
    limits.add_argument("key_id")
    _limit_arguments(limits)
    limits.set_defaults(func=_run(keys_limits))


def _limit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=int, help="in-flight requests (0 = unlimited)")
    parser.add_argument("--rpm", type=int, help="requests per minute (0 = unlimited)")
    parser.add_argument("--daily-tokens", type=int, help="tokens per UTC day (0 = unlimited)")
