"""The loopback guard also holds in the Python subprocesses the tests start."""

from __future__ import annotations

import subprocess
import sys


def test_subprocess_cannot_reach_beyond_loopback() -> None:
    code = (
        "import socket\n"
        "s = socket.socket()\n"
        "try:\n"
        "    s.connect(('192.0.2.1', 443))\n"
        "except OSError as exc:\n"
        "    print('blocked:', exc)\n"
        "try:\n"
        "    socket.getaddrinfo('api.binance.com', 443)\n"
        "except OSError as exc:\n"
        "    print('blocked:', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30).stdout
    assert out.count("blocked:") == 2, out
    assert "192.0.2.1" in out and "api.binance.com" in out
