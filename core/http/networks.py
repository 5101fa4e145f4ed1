"""Whether an address lies in a list of networks (CIDR strings from the settings)."""

import functools
import ipaddress


@functools.lru_cache(maxsize=1024)
def _network(cidr: str):
    return ipaddress.ip_network(cidr, strict=False)


def address_in(address: str, cidrs) -> bool:
    """Whether `address` lies in one of `cidrs` (False for anything that is not an IP address)."""
    return _address_in(address, tuple(cidrs))


@functools.lru_cache(maxsize=4096)  # a request asks about the same few addresses several times
def _address_in(address: str, cidrs: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in _network(cidr) for cidr in cidrs)
