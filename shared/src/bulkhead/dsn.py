"""Checks on a PostgreSQL connection string that the driver leaves to the socket layer.

asyncpg hands a port outside 1-65535 straight to the event loop, and what happens then depends on
the loop: the standard library raises OverflowError, uvloop wraps the number and reports a refused
connection. Checked here, a bad port is one clear configuration error on every loop.
"""

import re
from urllib.parse import parse_qs, urlsplit

__all__ = ["check_ports"]

_PORT = re.compile(r":(\d*)$")


def check_ports(dsn: str) -> None:
    """Raise ValueError if a port in the URL-form `dsn` (host list or `?port=`) is not 1-65535.

    Key-value DSNs (`host=... port=...`) and anything that is not a URL are left to asyncpg.
    The message never quotes the DSN: it may hold a password.
    """
    if "://" not in dsn:
        return
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return  # asyncpg refuses it with its own (caught and reworded) error
    hosts = parts.netloc.rpartition("@")[2]
    ports = [match.group(1) for host in hosts.split(",") if (match := _PORT.search(host))]
    for value in parse_qs(parts.query).get("port", []):
        ports.extend(value.split(","))
    for port in ports:
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError("a port in the dsn is not a number from 1 to 65535")
