"""`python -m service.worker`: one rq worker on gradserve's queue, for the Redis at
REDIS_URL. Start as many as you like, on any machine that reaches that Redis."""

import argparse
import logging
import os
import socket
import sys

import redis
from rq import Worker
from rq.serializers import JSONSerializer

from .config import load_config
from .queue import connect, make_queue


def registered_here(connection: redis.Redis) -> bool:
    """Is a worker of this host (its name starts with the host name) registered?"""
    try:
        names = [worker.name for worker in Worker.all(connection=connection)]
    except redis.RedisError:
        return False
    return any(name.startswith(f"{socket.gethostname()}.") for name in names)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m service.worker", description=__doc__)
    parser.add_argument("--burst", action="store_true", help="quit when the queue is empty")
    parser.add_argument("--name", help="the worker's name (default: host and pid)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 0 if a worker of this host is registered in Redis (a "
        "container healthcheck), else 1",
    )
    args = parser.parse_args(argv)
    config = load_config()
    if args.check:
        sys.exit(0 if registered_here(connect(config["REDIS_URL"], timeout=2.0)) else 1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(message)s")
    # Loaded here, in the parent: each job runs in a fork that starts with the engine ready.
    from . import tasks  # noqa: F401

    connection = connect(config["REDIS_URL"])
    name = args.name or f"{socket.gethostname()}.{os.getpid()}"
    worker = Worker(
        [make_queue(connection, config)],
        connection=connection,
        serializer=JSONSerializer,
        name=name,
    )
    worker.work(burst=args.burst, logging_level="INFO")


if __name__ == "__main__":
    main()
