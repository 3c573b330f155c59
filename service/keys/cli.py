"""`python -m service.keys`: make, list and revoke API keys, for the Redis at REDIS_URL
(else the one `make run` wrote to ./var/redis-url, $GRADSERVE_DATA_DIR/redis-url).

  create --tenant NAME   a new key for NAME; the key is printed once, alone on stdout
  list                   every key: id, tenant, created, revoked (never a key or a hash)
  revoke KEY_ID          the key stops working at the next request
"""

import argparse
import sys
from collections.abc import Callable

import redis

from ..config import load_config
from ..store import ApiKey, ApiKeys
from ..store.apikeys import TENANT_PATTERN
from ..store.queue import connect

TIMEOUT = 5.0
"""Seconds a Redis command may take before the command gives up."""


def tenant_name(text: str) -> str:
    if not TENANT_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a tenant name: 1 to 64 of a-z 0-9 _ . - "
            "starting with a letter or digit"
        )
    return text


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(
        prog="python -m service.keys",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parse.add_subparsers(dest="command", required=True, metavar="COMMAND")
    create = commands.add_parser("create", help="a new key for a tenant, printed once")
    create.add_argument("--tenant", required=True, type=tenant_name, help="whose key it is")
    commands.add_parser("list", help="every key, without the keys themselves")
    revoke = commands.add_parser("revoke", help="stop a key from working")
    revoke.add_argument("key_id", metavar="KEY_ID", help="the id `create` and `list` show")
    return parse


def create(keys: ApiKeys, args: argparse.Namespace) -> int:
    record, key = keys.create(args.tenant)
    print(key)
    print(
        f"made key {record.id} for tenant {record.tenant!r}: it is shown only this once "
        "(gradserve keeps its hash, never the key)",
        file=sys.stderr,
    )
    return 0


def list_keys(keys: ApiKeys, args: argparse.Namespace) -> int:
    rows = [("KEY ID", "TENANT", "CREATED", "REVOKED")]
    rows += [(k.id, k.tenant, k.created_at, k.revoked_at or "-") for k in keys.list()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    return 0


def revoke(keys: ApiKeys, args: argparse.Namespace) -> int:
    before: ApiKey | None = keys.get(args.key_id)
    record = keys.revoke(args.key_id)
    if record is None:
        print(f"error: there is no key {args.key_id!r} (`list` shows them)", file=sys.stderr)
        return 1
    state = "was already revoked" if before and before.revoked_at else "is revoked"
    print(f"key {record.id} of tenant {record.tenant!r} {state} (since {record.revoked_at})")
    return 0


COMMANDS: dict[str, Callable[[ApiKeys, argparse.Namespace], int]] = {
    "create": create,
    "list": list_keys,
    "revoke": revoke,
}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    keys = ApiKeys(connect(load_config()["REDIS_URL"], TIMEOUT))
    try:
        return COMMANDS[args.command](keys, args)
    except redis.RedisError as exc:
        print(
            f"error: Redis failed ({exc}); is it running, and REDIS_URL (else "
            "./var/redis-url, written by `make run`) right?",
            file=sys.stderr,
        )
        return 1
    finally:
        keys.redis.close()
