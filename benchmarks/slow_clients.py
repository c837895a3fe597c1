"""Slow clients against the shipped deployment: gunicorn alone, and behind deploy/'s nginx.

    python benchmarks/slow_clients.py [--stalled 4] [--seconds 60] [--out docs/slow_clients.json]

Each stalled client sends a POST's headers announcing a 100,000-byte body, then 6 bytes, and
waits. Meanwhile a probe asks /api/health every second; the figures are how many probes were
answered and how slowly. Gunicorn runs as shipped (2 workers x 2 threads, gunicorn.conf.py).
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench import Gunicorn, free_port  # noqa: E402

SITE_CONFIG = ROOT / "deploy" / "nginx-lesion-lens.conf"
STALLED_HEADERS = (b"POST /api/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 100000\r\n\r\n")
STALLED_BODY = b"--x\r\nC"  # 6 bytes of a 100,000


class Nginx:
    """Debian's nginx with the shipped site file, its listen port and upstream rewritten."""

    def __init__(self, upstream_port):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder = Path(tempfile.mkdtemp())
        site = SITE_CONFIG.read_text().replace("listen 80;", f"listen 127.0.0.1:{self.port};")
        site = site.replace("server 127.0.0.1:8083;", f"server 127.0.0.1:{upstream_port};")
        (self.folder / "site.conf").write_text(site)
        temp_paths = "".join(f"{kind}_temp_path {self.folder / kind};\n"
                             for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        user = "user root;\n" if os.geteuid() == 0 else ""  # root's workers may read the temp folder
        (self.folder / "nginx.conf").write_text(
            f"{user}worker_processes 1;\ndaemon off;\npid {self.folder / 'nginx.pid'};\n"
            f"error_log {self.folder / 'error.log'} info;\nevents {{ worker_connections 512; }}\n"
            f"http {{\naccess_log off;\n{temp_paths}include {self.folder / 'site.conf'};\n}}\n")
        self.process = subprocess.Popen([nginx_binary(), "-e", str(self.folder / "error.log"),
                                         "-p", str(self.folder), "-c", str(self.folder / "nginx.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("nginx did not start: " + (self.folder / "error.log").read_text()[-1000:])
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not start")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)
        shutil.rmtree(self.folder, ignore_errors=True)


def nginx_binary():
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


def stall(port, count):
    """`count` open connections, each inside a request body it will never finish."""
    sockets = []
    for _ in range(count):
        connection = socket.create_connection(("127.0.0.1", port), timeout=5)
        connection.sendall(STALLED_HEADERS + STALLED_BODY)
        sockets.append(connection)
    return sockets


def probe(url, timeout=10):
    """Seconds until /api/health answered, or None when it did not within `timeout`."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url + "/api/health", timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError:
        pass  # an answer all the same
    except OSError:
        return None
    return time.perf_counter() - started


def closed_within(connection, seconds):
    """What the server sent before closing a stalled connection, or None if still open."""
    connection.settimeout(seconds)
    received = b""
    try:
        while chunk := connection.recv(4096):
            received += chunk
    except socket.timeout:
        return None
    except OSError:
        pass
    return received


def attack(url, port, stalled, seconds):
    """Probe once a second for `seconds` while `stalled` clients hold their connections."""
    sockets = stall(port, stalled)
    time.sleep(1)  # the server has read their headers
    latencies, deadline = [], time.time() + seconds
    while time.time() < deadline:
        latencies.append(probe(url))
        time.sleep(1)
    answered = [s for s in latencies if s is not None]
    stalled_closed = sum(closed_within(s, 0.1) is not None for s in sockets)
    for connection in sockets:
        connection.close()
    return {"stalled_clients": stalled, "seconds": seconds, "probes": len(latencies),
            "answered": len(answered), "slowest_answer_s": round(max(answered), 3) if answered else None,
            "stalled_connections_closed_by_server": stalled_closed}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stalled", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--models", default=str(ROOT / "models"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    server = Gunicorn(2, args.models, {"SKINLESION_PROXIES": "1"})
    proxy = Nginx(server.port)
    try:
        figures = {"gunicorn_alone": attack(server.url, server.port, args.stalled, args.seconds),
                   "behind_nginx": attack(proxy.url, proxy.port, args.stalled, args.seconds)}
    finally:
        proxy.stop()
        server.stop()
    print(json.dumps(figures, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
