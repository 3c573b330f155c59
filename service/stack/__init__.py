"""`make run` (`python -m service.stack`): the whole stack on one machine, supervised
(`supervisor`), with the bundled redis-server (`redis_server`)."""

from .supervisor import Stack

__all__ = ["Stack"]
