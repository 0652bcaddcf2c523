"""What CloudTrail's sourceIPAddress holds, reduced to a public IP address or nothing.

sourceIPAddress can be an address, a service name (``config.amazonaws.com``), ``AWS Internal``,
two addresses (``"81.2.69.142, 192.168.10.10"``: the first is the client), empty, or an invalid
dotted quad such as ``08.1.250.216``. Only a public (globally routable) address can be located
or be a Tor exit, so everything else becomes ``None``.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=1 << 18)
def public_ip(value: object) -> str | None:
    """The first address in ``value`` in canonical form if it is a public IP, else ``None``.

    IPv4-mapped IPv6 addresses (``::ffff:1.2.3.4``) become their IPv4 form, so one host has one
    spelling whatever the logging service wrote.
    """
    address = parse_ip(value)
    if address is None or not address.is_global:
        return None
    return str(address)


def parse_ip(value: object) -> IPAddress | None:
    """The first address in ``value``, or ``None`` when it is not an IP address at all."""
    if not isinstance(value, str):
        return None
    text = value.split(",", 1)[0].strip()
    if text.startswith("[") and text.endswith("]"):  # bracketed IPv6, as in URLs
        text = text[1:-1]
    if not text or len(text) > 45 or not (text[0].isdigit() or text[0] in ":abcdefABCDEF"):
        return None  # host names and 'AWS Internal' leave here, without an exception
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return None  # includes leading zeros ('08.1.250.216'): ambiguous, so rejected
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
