"""Loaded by every Python subprocess the tests start (tests/conftest.py puts this folder on PYTHONPATH).

The same rule as the in-process guard: a test's `cryptomon daemon`, `cryptomon simulate` or
`cryptomon demo` may only open sockets to loopback addresses, so a test can never reach a real
exchange even when a config or a default slips through.
"""

from __future__ import annotations

import ipaddress
import socket

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _check(address: object) -> None:
    if isinstance(address, tuple) and address:
        host = str(address[0]).split("%")[0]
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise OSError(f"test subprocess tried to connect to hostname {host!r}: tests stay on 127.0.0.1") from None
        if not ip.is_loopback:
            raise OSError(f"test subprocess tried to reach {host}: tests stay on 127.0.0.1")


def _connect(self: socket.socket, address: object) -> None:
    _check(address)
    return _real_connect(self, address)  # type: ignore[arg-type]


def _connect_ex(self: socket.socket, address: object) -> int:
    _check(address)
    return _real_connect_ex(self, address)  # type: ignore[arg-type]


def _getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    if host not in (None, "localhost", b"localhost"):
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, f"test subprocesses do not resolve {name!r}") from None
        if not (ip.is_loopback or ip.is_unspecified):
            raise OSError(f"test subprocess tried to resolve {name}: tests stay on 127.0.0.1")
    return _real_getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _connect  # type: ignore[method-assign]
socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]
socket.getaddrinfo = _getaddrinfo
