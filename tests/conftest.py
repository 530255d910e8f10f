"""Suite-wide guards: no test reaches beyond loopback, and none touches the user's files."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _check(address: object) -> None:
    if isinstance(address, tuple) and address:
        host = str(address[0])
        try:
            ip = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            raise AssertionError(f"test tried to connect to a hostname {host!r}: tests stay on 127.0.0.1") from None
        if not ip.is_loopback:
            raise AssertionError(f"test tried to reach {host}: tests stay on 127.0.0.1")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _check(address)
    return _real_connect(self, address)  # type: ignore[arg-type]


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _check(address)
    return _real_connect_ex(self, address)  # type: ignore[arg-type]


def _guarded_getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    if host not in (None, "localhost", b"localhost"):
        try:
            ip = ipaddress.ip_address(host.decode() if isinstance(host, bytes) else str(host))
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, f"tests do not resolve {host!r}") from None
        if not ip.is_loopback and not ip.is_unspecified:
            raise AssertionError(f"test tried to resolve {host}: tests stay on 127.0.0.1")
    return _real_getaddrinfo(host, *args, **kwargs)


_SUBPROCESS_GUARD = str(Path(__file__).resolve().parent / "loopback_guard")
_pycache_dir: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    """With PYTHONDONTWRITEBYTECODE set, every `cryptomon` subprocess of the suite (a few hundred) compiled the
    package from source again (~0.13 s of CPU each): give the subprocesses (and xdist workers) a bytecode cache
    of this run in a private tmp folder instead, so the source tree stays free of __pycache__ all the same."""
    global _pycache_dir
    if os.environ.get("PYTHONDONTWRITEBYTECODE") and not os.environ.get("PYTHONPYCACHEPREFIX"):
        _pycache_dir = tempfile.mkdtemp(prefix="cm-pycache-")  # 0700, this run's own
        del os.environ["PYTHONDONTWRITEBYTECODE"]
        os.environ["PYTHONPYCACHEPREFIX"] = _pycache_dir


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`make test` runs on pytest-xdist workers: tests marked ``serial`` (a fixed port, a shared folder) all go to
    one worker, so no two of them ever run at the same time."""
    for item in items:
        if item.get_closest_marker("serial") is not None:
            item.add_marker(pytest.mark.xdist_group("serial"))


def pytest_unconfigure(config: pytest.Config) -> None:
    if _pycache_dir is not None:
        shutil.rmtree(_pycache_dir, ignore_errors=True)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # Python subprocesses (real `cryptomon daemon`, `simulate`, `demo`) load the same guard via sitecustomize.
    existing = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", _SUBPROCESS_GUARD + (os.pathsep + existing if existing else ""))
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", _guarded_getaddrinfo)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Config, data, state and runtime folders under tmp: the developer's machine stays out."""
    home = tmp_path / "cryptomon-home"
    home.mkdir()
    monkeypatch.setenv("CRYPTOMON_HOME", str(home))
    monkeypatch.delenv("CRYPTOMON_CONFIG", raising=False)
    monkeypatch.setenv("NO_PROXY", "*")
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    yield home
