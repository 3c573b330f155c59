"""Where a webhook may be sent (the SSRF guard), judged twice: when the job is submitted (the
API answers 422 naming `webhook/url`) and at every delivery, against the addresses the name
resolves to then; the sender connects to an address checked here, never to a second
resolution of the name (DNS rebinding).

Refused: a scheme other than http and https, credentials in the URL, and a host that is or
resolves to an address that is not public: loopback, private, unique-local, link-local (the
cloud metadata service at 169.254.169.254), shared (100.64/10), multicast, reserved or
unspecified, IPv4 or IPv6, IPv4 inside IPv6 (mapped, NAT64, 6to4, Teredo) judged as the IPv4
address it carries. A name with one such address among several is refused whole.
`allow_private` (the operator's WEBHOOK_ALLOW_PRIVATE) lifts the address rules only."""

import ipaddress
import socket
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
SCHEMES = {"http": 80, "https": 443}


class RefusedTarget(ValueError):
    """A webhook URL the service does not send to; the message says why."""


class Url(NamedTuple):
    """A webhook URL taken apart."""

    scheme: str
    host: str  # as the URL spells it (the Host header and the TLS server name)
    port: int
    target: str  # the path and query the request line carries


def parse_url(url: str) -> Url:
    """The URL's parts, or RefusedTarget: not http(s), credentials, no host, a bad port."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise RefusedTarget("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedTarget(f"is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise RefusedTarget("must be an http or https URL")
    if parts.username is not None or parts.password is not None:
        raise RefusedTarget("must not carry credentials (user:password@)")
    if not parts.hostname:
        raise RefusedTarget("must name a host")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Url(scheme, parts.hostname, port or SCHEMES[scheme], target)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it carries one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def refusal(address: IPAddress) -> str | None:
    """Why `address` is no webhook target (None: it is public)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            return refusal(inner)
    for name in ("loopback", "link_local", "multicast", "unspecified", "private", "reserved"):
        if getattr(address, f"is_{name}"):
            return f"is a {name.replace('_', '-')} address"
    if not address.is_global:
        return "is not a public address"
    return None


Resolver = Callable[..., list[tuple[Any, ...]]]


def addresses(url: Url, allow_private: bool, resolve: Resolver = socket.getaddrinfo) -> list[str]:
    """The addresses to connect to for `url`, each checked (RefusedTarget if one is not
    allowed); socket.gaierror if the name does not resolve."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(url.host)
    except ValueError:
        literal = None
    if literal is not None:
        found = [literal]
    else:
        infos = resolve(url.host, url.port, type=socket.SOCK_STREAM)
        found = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    if not allow_private:
        for address in found:
            why = refusal(address)
            if why is not None:
                named = url.host if literal is not None else f"{url.host} resolves to {address}: it"
                raise RefusedTarget(f"host {named} {why}")
    return [str(address) for address in found]


def check_at_submit(url: str, allow_private: bool, resolve: Resolver = socket.getaddrinfo) -> None:
    """RefusedTarget if `url` is no allowed target now. A name that does not resolve (yet) is
    let through: each delivery checks it again."""
    parts = parse_url(url)
    if allow_private:
        return
    try:
        addresses(parts, allow_private, resolve)
    except (socket.gaierror, UnicodeError):
        return


def allow_private(value: object) -> bool:
    """The WEBHOOK_ALLOW_PRIVATE setting as a bool: on/off, true/false, yes/no, 1/0."""
    words = {"on": True, "true": True, "yes": True, "1": True}
    words |= {"off": False, "false": False, "no": False, "0": False, "": False}
    answer = words.get(str(value).strip().lower())
    if answer is None:
        raise ValueError(f"GRADSERVE_WEBHOOK_ALLOW_PRIVATE must be on or off, not {value!r}")
    return answer
