"""Two `evostreaming serve pocket` replicas behind Debian's nginx (least_conn, WebSocket upgrade) on
loopback, as docs/deploy.md sets them up: sessions spread over both replicas, and stopping one closes
only its own sessions while the other's go on."""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import free_port

pytestmark = pytest.mark.slow


def _nginx() -> str:
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if path is None:
        pytest.skip("Debian's nginx is not installed (apt-get install -y nginx; `make test` does it as root)")
    return path


def _serve(port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "evostreaming.cli", "serve", "pocket", "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--max-fps", "1000"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    for line in proc.stderr:  # blocks until uvicorn listens (or the process ends)
        if "Uvicorn running on" in line:
            break
    assert proc.poll() is None, "a replica did not start"
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    return proc


def _conf(folder: Path, listen: int, replicas: list[int]) -> Path:
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;" for p in replicas)
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers as root only where the master is root
    temp = "\n".join(
        f"    {kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = folder / "nginx.conf"
    conf.write_text(
        f"""{user}worker_processes 1;
error_log {folder / "error.log"};
pid {folder / "nginx.pid"};
events {{ worker_connections 256; }}
http {{
    access_log off;
{temp}
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    upstream evostreaming {{
        least_conn;
{servers}
    }}
    server {{
        listen 127.0.0.1:{listen};
        location / {{
            proxy_pass http://evostreaming;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 3600s;
        }}
    }}
}}
"""
    )
    return conf


def _health(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
        return json.loads(r.read())


def _until_up(port: int, deadline_s: float = 30.0) -> None:
    """nginx prints nothing when ready: poll its port (bounded) until /healthz answers through it."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            _health(port)
            return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


async def _scenario(lb: int, replicas: list[subprocess.Popen], ports: list[int]) -> None:
    from websockets.exceptions import ConnectionClosed

    from evostreaming.serve.client import RealtimeClient

    url = f"ws://127.0.0.1:{lb}/v1/realtime"
    clients = []
    for _ in range(4):  # one at a time, each held open: least_conn alternates over the two replicas
        c = RealtimeClient(url)
        await c.__aenter__()
        clients.append(c)
    names = {p: _health(p)["server"] for p in ports}
    where = [c.session["session"]["server"] for c in clients]
    assert sorted(where) == sorted([names[ports[0]]] * 2 + [names[ports[1]]] * 2)
    assert [_health(p)["sessions"] for p in ports] == [2, 2]

    replicas[0].terminate()  # stop the first replica: only its two sessions end
    replicas[0].wait(timeout=30)
    gone = [c for c, w in zip(clients, where, strict=True) if w == names[ports[0]]]
    alive = [c for c in clients if c not in gone]
    for c in gone:
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(c.next_event(), timeout=30)
        # a stopped replica says so: 1012 "service restart", passed through nginx; the client may reconnect
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    frame = np.full((64, 64, 3), 128, np.uint8)
    for k, c in enumerate(alive):
        await c.send_frame(frame, seq=k, time=0.0)
        while (ev := await asyncio.wait_for(c.next_event(), timeout=60))["type"] != "frame.decision":
            assert ev["type"] not in ("error", "session.stats"), ev
    assert _health(ports[1])["sessions"] == 2
    for c in alive:
        await c.__aexit__(None, None, None)


def test_two_replicas_behind_nginx_spread_sessions_and_fail_apart(tmp_path):
    nginx = _nginx()
    ports = [free_port(), free_port()]
    replicas = [_serve(p) for p in ports]
    lb = free_port()
    conf = _conf(tmp_path, lb, ports)
    proxy = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"])
    try:
        _until_up(lb)
        asyncio.run(_scenario(lb, replicas, ports))
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
        for r in replicas:
            if r.poll() is None:
                r.terminate()
                r.wait(timeout=30)
