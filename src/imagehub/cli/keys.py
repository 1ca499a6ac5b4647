"""`imagehub keys create|list|revoke|limits`: tenants' API keys, straight in the store.

These run where the hub's settings are (the same `IMAGEHUB_*` environment, or `--data-dir`),
like `imagehub migrate`; over HTTP, an admin key does the same at `/hub/v1/admin/keys`.
A running hub sees a revoked key or new limits within `IMAGEHUB_KEY_CACHE_SECONDS`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the server's modules load only when a key command runs
    from imagehub.settings import Settings
    from imagehub.tenancy.accounts import Accounts, Limits
    from imagehub.tenancy.types import ApiKey

Commands = Any  # argparse's subparsers action has no public type
_NONE = "none"


def add_commands(commands: Commands) -> None:
    keys = commands.add_parser("keys", help="create, list and revoke tenants' API keys")
    keys.set_defaults(run=lambda args: _usage(keys))
    sub = keys.add_subparsers(title="key commands")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, help="SQLite and media folder (./imagehub-data)")

    create = sub.add_parser("create", parents=[common], help="make a key; it is printed once")
    create.add_argument("--tenant", required=True, help="the tenant the key belongs to")
    create.add_argument("--name", default="", help="a label, to tell keys apart")
    create.add_argument("--admin", action="store_true", help="may use the admin routes")
    _limit_options(create)
    create.set_defaults(run=_runner(_create))

    listing = sub.add_parser("list", parents=[common], help="list keys (never their secret)")
    listing.add_argument("--tenant", help="only this tenant's keys")
    listing.add_argument("--json", action="store_true", help="one JSON object per key")
    listing.set_defaults(run=_runner(_list))

    revoke = sub.add_parser("revoke", parents=[common], help="revoke a key by its id")
    revoke.add_argument("key_id", metavar="KEY_ID", help="the key's id (key_...)")
    revoke.set_defaults(run=_runner(_revoke))

    limits = sub.add_parser("limits", parents=[common], help="change a key's limits")
    limits.add_argument("key_id", metavar="KEY_ID", help="the key's id (key_...)")
    _limit_options(limits)
    limits.set_defaults(run=_runner(_set_limits))


def _limit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rpm", type=_count, metavar="N", help="requests per minute, or none")
    parser.add_argument(
        "--concurrency", type=_count, metavar="N", help="tasks queued or running at once, or none"
    )
    parser.add_argument("--budget", type=_money, metavar="USD", help="total spend, or none")


def _count(text: str) -> int | str:
    if text == _NONE:
        return _NONE
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1 (or none)")
    return value


def _money(text: str) -> float | str:
    if text == _NONE:
        return _NONE
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be a positive amount (or none)")
    return value


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


Action = Callable[["Accounts", argparse.Namespace], Awaitable[int]]


def _runner(action: Action) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from imagehub.settings import Settings

        settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
        missing = _missing_database(settings.store_url)
        if missing:  # opening would make an empty database and answer for it: say where we looked
            print(f"imagehub keys: {missing}", file=sys.stderr)
            return 2
        return asyncio.run(_with_accounts(action, args, settings))

    return run


async def _with_accounts(action: Action, args: argparse.Namespace, settings: Settings) -> int:
    from imagehub.errors import ClientError
    from imagehub.store import open_store
    from imagehub.tenancy.accounts import Accounts

    store = open_store(settings.store_url, pool_size=1, migrate_on_open=settings.migrate_on_start)
    await store.open()
    try:
        return await action(Accounts(store, settings), args)
    except ClientError as exc:
        print(f"imagehub keys: {exc.message}", file=sys.stderr)
        return 4 if exc.status == 404 else 2
    finally:
        await store.close()


def _missing_database(store_url: str) -> str | None:
    """What is wrong when `store_url` is an SQLite file that does not exist; else None."""
    if not store_url.startswith("sqlite:///"):
        return None
    path = Path(store_url.removeprefix("sqlite:///"))
    if path.exists():
        return None
    return (
        f"no database at {path.resolve()}; run this in the folder 'imagehub serve' ran in, "
        "or point at the hub's data with --data-dir DIR, IMAGEHUB_DATA_DIR or "
        "IMAGEHUB_DATABASE_URL ('imagehub migrate' makes a new, empty one)"
    )


def _limits_from(args: argparse.Namespace, current: Limits | None = None) -> Limits:
    """The limits the options give; options left out keep `current`'s, `none` removes one."""
    from imagehub.tenancy.accounts import Limits

    def pick(value: Any, old: int | None) -> int | None:
        return old if value is None else None if value == _NONE else int(value)

    budget = args.budget if args.budget in (None, _NONE) else round(args.budget * 1_000_000)
    old = current or Limits()
    return Limits(
        pick(args.rpm, old.rpm),
        pick(args.concurrency, old.concurrency),
        pick(budget, old.budget_micros),
    )


async def _create(accounts: Accounts, args: argparse.Namespace) -> int:
    plaintext, key = await accounts.create_key(
        args.tenant, name=args.name, admin=args.admin, limits=_limits_from(args)
    )
    print(
        f"Created {key.id} for tenant {key.tenant_id}. The key is shown only this once:",
        file=sys.stderr,
    )
    print(plaintext)
    return 0


async def _list(accounts: Accounts, args: argparse.Namespace) -> int:
    keys = await accounts.store.list_keys(args.tenant)
    for key in keys:
        print(json.dumps(_row(key)) if args.json else _line(key))
    return 0


async def _revoke(accounts: Accounts, args: argparse.Namespace) -> int:
    key = await accounts.revoke(args.key_id)
    print(f"{key.id} ({key.prefix}..., tenant {key.tenant_id}) is revoked")
    return 0


async def _set_limits(accounts: Accounts, args: argparse.Namespace) -> int:
    from imagehub.tenancy.accounts import Limits

    key = await accounts.key(args.key_id)
    current = Limits(key.rpm_limit, key.concurrency_limit, key.budget_micros)
    key = await accounts.set_limits(args.key_id, _limits_from(args, current))
    print(_line(key))
    return 0


def _row(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "tenant_id": key.tenant_id,
        "name": key.name,
        "prefix": key.prefix,
        "admin": key.admin,
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "requests_per_minute": key.rpm_limit,
        "concurrent_tasks": key.concurrency_limit,
        "budget_usd": None if key.budget_micros is None else key.budget_micros / 1e6,
        "active_tasks": key.active_tasks,
        "spent_usd": key.spent_micros / 1e6,
        "reserved_usd": key.reserved_micros / 1e6,
    }


def _line(key: ApiKey) -> str:
    status = "revoked" if key.revoked_at else "admin" if key.admin else "active"
    limits = [
        f"rpm {key.rpm_limit}" if key.rpm_limit is not None else "",
        f"concurrency {key.concurrency_limit}" if key.concurrency_limit is not None else "",
        f"budget ${key.budget_micros / 1e6:,.2f}" if key.budget_micros is not None else "",
    ]
    return (
        f"{key.id}  {key.tenant_id}  {key.prefix}...  {status}  {key.name or '-'}  "
        f"limits: {', '.join(filter(None, limits)) or 'none'}  "
        f"spent ${key.spent_micros / 1e6:,.4f}, {key.active_tasks} in flight"
    )
