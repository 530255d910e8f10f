"""Real Prometheus and Alertmanager processes on loopback for acceptance tests (Debian packages
``prometheus`` and ``prometheus-alertmanager``; tests skip with a reason when they are missing)."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.fakes.daemon_harness import free_port, wait_http_ok


def find_binary(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
        if found:
            return found
    return None


PROMETHEUS = find_binary("prometheus")
ALERTMANAGER = find_binary("alertmanager", "prometheus-alertmanager")
PROMTOOL = find_binary("promtool")


def get_json(url: str, timeout: float = 3.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def wait_for(check: Any, timeout: float, what: str, poll: float = 0.25) -> Any:
    """Call ``check()`` until it returns something truthy; the bound only stops a hang."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (OSError, ValueError, KeyError) as exc:
            last_exc = exc
        time.sleep(poll)
    raise TimeoutError(f"{what} not reached within {timeout:g}s (last error: {last_exc})")


@contextlib.contextmanager
def _process(cmd: list[str], log_path: Path, ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    log = open(log_path, "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        try:
            wait_http_ok(ready_url, 30.0, proc)
        except (RuntimeError, TimeoutError) as exc:
            log.flush()
            raise RuntimeError(f"{exc}\n{log_path.read_text(errors='replace')[-3000:]}") from None
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@contextlib.contextmanager
def alertmanager(workdir: Path, group_by: Sequence[str] = ("alertname", "exchange")) -> Iterator[str]:
    """Alertmanager grouping by ``group_by`` (no ``location``): yields its base URL."""
    assert ALERTMANAGER is not None
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "route": {
            "receiver": "sink",
            "group_by": list(group_by),
            "group_wait": "1s",
            "group_interval": "5s",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "sink"}],
    }
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
    cmd = [
        ALERTMANAGER,
        f"--config.file={workdir / 'alertmanager.yml'}",
        f"--storage.path={workdir / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    url = f"http://127.0.0.1:{port}"
    with _process(cmd, workdir / "alertmanager.log", url + "/-/ready"):
        yield url


@contextlib.contextmanager
def prometheus(
    workdir: Path,
    targets: Sequence[str],
    rule_files: Sequence[Path] = (),
    alertmanager_url: str | None = None,
    interval: str = "1s",
) -> Iterator[str]:
    """Prometheus scraping ``targets`` (host:port) as job ``cryptomon``: yields its base URL."""
    assert PROMETHEUS is not None
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [{"job_name": "cryptomon", "static_configs": [{"targets": list(targets)}]}],
        "rule_files": [str(p) for p in rule_files],
    }
    if alertmanager_url:
        hostport = urllib.parse.urlparse(alertmanager_url).netloc
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [hostport]}]}]}
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    cmd = [
        PROMETHEUS,
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'prom-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
    ]
    url = f"http://127.0.0.1:{port}"
    with _process(cmd, workdir / "prometheus.log", url + "/-/ready"):
        yield url


def prom_query(prom_url: str, query: str, at: float | None = None) -> list[dict[str, Any]]:
    """Instant query, evaluated now or at Unix time ``at`` (to read several queries at one moment)."""
    params: dict[str, str] = {"query": query}
    if at is not None:
        params["time"] = repr(at)
    data = get_json(f"{prom_url}/api/v1/query?" + urllib.parse.urlencode(params))
    if data.get("status") != "success":
        raise ValueError(str(data))
    return list(data["data"]["result"])
