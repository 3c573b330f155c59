"""redis-py's reply parser (hiredis), with one check made without yielding to gevent.

Before lending a pooled connection, redis-py asks whether it has anything unread (a
zero-timeout poll of its socket). Under gevent (the API's workers) that poll is gevent's,
which arms a timer and switches to the event loop to find out that nothing blocks: with
many requests in flight, that cost the API a third of the CPU of a polled job GET
(docs/BENCHMARKS.md). A zero-timeout poll never blocks, so the operating system's own is
used; anything found waiting is then judged by redis-py as before (a closed socket, a
reply left unread)."""

import select

from redis._parsers import _HiredisParser

try:  # the poll gevent's monkey-patching replaced, if it did
    from gevent.monkey import get_original

    _os_poll = get_original("select", "poll")
except ImportError:  # gevent comes with the API; without it, select is not patched
    _os_poll = select.poll


class NonYieldingParser(_HiredisParser):
    def can_read(self, timeout: float = 0) -> bool:
        sock, reader = self._sock, self._reader
        if timeout == 0 and sock is not None and reader is not None and not reader.has_data():
            if not hasattr(sock, "pending"):  # TLS may hold bytes above the socket: ask redis-py
                poller = _os_poll()
                poller.register(sock, select.POLLIN)
                if not poller.poll(0):
                    return False  # nothing waiting: the usual answer, at the cost of a syscall
        return super().can_read(timeout)
