"""Who is calling a provider route: the client's address, behind trusted reverse proxies or not.

``X-Forwarded-For`` is written by whoever sends the request, so it is believed only when the
connecting peer is one of our own proxies (``CALLPOP_TRUSTED_PROXIES``), and then read from the
right: each proxy appends the address it saw, so the right-most address that is not one of ours
is the last one a proxy of ours vouches for. Anything to its left the client may have made up.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable, Sequence

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Settings' addresses and networks ('10.0.0.0/8', '203.0.113.7', '::1') as networks."""
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip())


def address(text: str) -> Address | None:
    """An address as a peer or a proxy writes it ('203.0.113.7', '203.0.113.7:5060', '[2001:db8::1]:443'),
    IPv4-mapped IPv6 as IPv4 (a dual-stack socket reports IPv4 peers so); None if it is none."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.partition(":")[0]
    try:
        found = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def within(addr: Address, nets: Sequence[Network]) -> bool:
    return any(addr.version == net.version and addr in net for net in nets)


def client_address(peer: str, forwarded_for: Iterable[str], trusted: Sequence[Network]) -> Address | None:
    """The client's address: the peer's, or, when the peer is a trusted proxy, the right-most
    address of ``X-Forwarded-For`` (every header of it, in order) that is not a trusted proxy.
    None when the address that decides is not an address (refuse: it cannot be checked)."""
    addr = address(peer)
    if addr is None or not within(addr, trusted):
        return addr
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        found = address(hop)
        if found is None or not within(found, trusted):
            return found
        addr = found
    return addr  # only our own proxies on the way (or no header): the first of them
