"""Where the hub may connect: an address policy enforced at connect time.

Every URL the hub fetches on a client's behalf (`image_urls`, `mask_url`, `webhook_url`) goes
through `GuardedBackend`, an httpcore network backend whose `connect_tcp` resolves the host,
vets every address it resolved to, and connects to a vetted address itself. Checking the URL
before the request is not enough: a name may resolve to a public address when checked and to
a private one when connected (DNS rebinding), and odd literals (`2130706433`, `0177.0.0.1`,
`127.1`) only show what they are once resolved.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import httpcore

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: host, port -> every address the host resolves to
Resolver = Callable[[str, int], Awaitable[list[str]]]

#: refused whatever the allow-list says: the cloud instance metadata services
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)

# Not globally reachable, or not meant to be reached (beyond what `is_global` already says).
_DENIED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "64:ff9b:1::/48",
        "100::/64",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
DEFAULT_PORTS = frozenset({80, 443})


class Blocked(Exception):
    """A connection the address policy refuses; the message says why, without the address."""


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, NAT64, 6to4, Teredo), if any."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client: the host the packets are for
    return None


def is_public(ip: IPAddress) -> bool:
    """Globally routable, once unwrapped from any IPv6 form that carries an IPv4 address."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        return is_public(inner)
    return ip.is_global and not any(ip in net for net in _DENIED if net.version == ip.version)


@dataclass(frozen=True)
class AddressPolicy:
    """Public addresses on default ports, plus what the operator allow-listed (any port)."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, allow: str | Iterable[str]) -> AddressPolicy:
        """From `"127.0.0.1/32, 10.0.0.0/8, images.internal"`: networks, addresses, names."""
        items = allow.split(",") if isinstance(allow, str) else allow
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for item in (i.strip() for i in items):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                hosts.add(_host_name(item))
        return cls(tuple(networks), frozenset(hosts))

    def allow_listed(self, host: str, ip: IPAddress) -> bool:
        if _host_name(host) in self.hosts:
            return True
        candidates = [ip] + ([inner] if (inner := embedded_ipv4(ip)) else [])
        return any(
            c in net for c in candidates for net in self.networks if net.version == c.version
        )

    def check_host(self, host: str, port: int) -> None:
        """What can be refused before any lookup: a literal address the policy refuses, or a
        loopback name (`localhost`) that is not allow-listed. Other names wait for connect."""
        address = literal_address(host)
        if address is not None:
            self.check(host, str(address), port)
        elif is_local_name(host) and not self.allow_listed(host, _LOOPBACK):
            raise Blocked("it is not a public address")

    def check(self, host: str, address: str, port: int) -> None:
        """Raise Blocked unless the hub may connect to `address`:`port` for `host`."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        inner = embedded_ipv4(ip)
        if ip in METADATA or (inner is not None and inner in METADATA):
            raise Blocked("it is a cloud metadata address, refused whatever the settings say")
        if self.allow_listed(host, ip):
            return
        if not is_public(ip):
            raise Blocked(
                f"it is not a public address; IMAGEHUB_FETCH_ALLOW_PRIVATE={_host_name(host)} "
                "would allow it"
            )
        if port not in DEFAULT_PORTS:
            raise Blocked(
                f"port {port} is not allowed (only 80 and 443); "
                f"IMAGEHUB_FETCH_ALLOW_PRIVATE={_host_name(host)} would allow any port of it"
            )


def literal_address(host: str) -> IPAddress | None:
    """The address a host written as one stands for, in any notation the resolver takes
    (`127.1`, `0x7f.1`, `2130706433` too); None for a name."""
    bare = _host_name(host)
    try:
        return ipaddress.ip_address(bare.split("%", 1)[0])
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(bare))
    except OSError:
        return None


def is_local_name(host: str) -> bool:
    """`localhost` and its subdomains: they resolve to loopback on every system."""
    name = _host_name(host)
    return name == "localhost" or name.endswith(".localhost")


_LOOPBACK = ipaddress.IPv4Address("127.0.0.1")


def _host_name(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host`, in its order, without repeats."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, vets every address, then connects to a vetted one: nothing else connects."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        resolver: Resolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self.resolver = resolver or system_resolver
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await asyncio.wait_for(self.resolver(host, port), timeout)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"the host name could not be resolved ({exc})") from None
        except TimeoutError:
            raise httpcore.ConnectTimeout("resolving the host name timed out") from None
        if not addresses:
            raise httpcore.ConnectError("the host name resolved to no address")
        for address in addresses:  # every one: a mixed answer is refused as a whole
            self.policy.check(host, address, port)
        error: Exception = httpcore.ConnectError("no address could be reached")
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise Blocked("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)
