"""Reliability under load, on loopback: concurrency, soak, and a worker killed mid-analysis.

    python benchmarks/loadtest.py [--requests 300] [--concurrency 8] [--soak 1000]
    python benchmarks/loadtest.py --database postgresql://user@host:port/db --out docs/loadtest_postgresql.json

1. `--requests` analyses at `--concurrency` against gunicorn with 2 workers: counts 5xx
   and checks every response belongs to its own upload (sha256 of the stored bytes).
2. `--soak` analyses in a row: resident memory of each worker every 50 requests.
3. SIGKILL a worker while it analyses: the server keeps answering, and afterwards every
   row has its files and (after the start-up sweep) no file lacks its row.
Figures go to docs/robustness.json; docs/robustness.md quotes them.
"""
import argparse
import hashlib
import http.client
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench import Gunicorn, multipart, percentile, run_concurrently, test_images  # noqa: E402


def analyze(url, data, task="7class"):
    body, content_type = multipart(data, task)
    request = urllib.request.Request(url + "/api/analyze", data=body, headers={"Content-Type": content_type})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, json.loads(response.read()), time.perf_counter() - started
    except urllib.error.HTTPError as error:
        return error.code, None, time.perf_counter() - started
    except (ConnectionError, http.client.HTTPException, urllib.error.URLError):
        return "connection closed", None, time.perf_counter() - started


def rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def concurrency_run(server, images, requests, concurrency):
    def job(index):
        data = images[index % len(images)]
        status, body, seconds = analyze(server.url, data)
        mismatch = status == 200 and body["image_sha256"] != hashlib.sha256(data).hexdigest()
        return status, mismatch, seconds

    results, elapsed = run_concurrently(job, requests, concurrency)
    latencies = [r[2] for r in results]
    return {"requests": requests, "concurrency": concurrency, "status_5xx": sum(r[0] >= 500 for r in results),
            "non_200": sum(r[0] != 200 for r in results), "mismatched_uploads": sum(r[1] for r in results),
            "p50_ms": round(percentile(latencies, 50) * 1000), "p99_ms": round(percentile(latencies, 99) * 1000),
            "throughput_per_s": round(requests / elapsed, 2), "seconds": round(elapsed, 1)}


def soak(server, images, count, every=50):
    pids = server.worker_pids()
    curve = [{"requests": 0, "rss_mb": {str(p): rss_mb(p) for p in pids}}]
    failures = 0
    for index in range(1, count + 1):
        status, _, _ = analyze(server.url, images[index % len(images)])
        failures += status != 200
        if index % every == 0:
            curve.append({"requests": index, "rss_mb": {str(p): rss_mb(p) for p in server.worker_pids()}})
    first = curve[1]["rss_mb"] if len(curve) > 1 else curve[0]["rss_mb"]  # after warm-up
    last = curve[-1]["rss_mb"]
    growth = {pid: round(100 * (last[pid] - first[pid]) / first[pid], 1) for pid in last if pid in first}
    return {"requests": count, "non_200": failures, "curve": curve, "growth_percent_after_warmup": growth}


def kill_mid_analysis(server, images, database=None):
    victims = server.worker_pids()
    results = []
    thread = threading.Thread(target=lambda: results.append(analyze(server.url, images[3])))
    thread.start()
    time.sleep(0.15)
    os.kill(victims[0], signal.SIGKILL)
    thread.join()
    time.sleep(1)
    after = [analyze(server.url, images[i])[0] for i in range(10)]
    from webapp.store import Store
    rows = [r["files"] for r in Store(database or server.folder / "db.sqlite3").list(limit=100_000)]
    missing = sum(not (server.folder / ("u" if kind == "upload" else "h") / name).exists()
                  for files in rows for kind, name in files.items())
    return {"in_flight_status": results[0][0] if results else None,
            "answers_after_kill": after, "all_answered_after_kill": all(s == 200 for s in after),
            "rows": len(rows), "rows_with_missing_files": missing}


def orphans_after_restart(server_folder, database=None):
    """The sweep of a later start (past the grace period) removes the files without a row
    that the killed worker left; before it, they are counted too."""
    from webapp.files import AnalysisFiles
    from webapp.store import Store
    store = Store(database or server_folder / "db.sqlite3")
    folders = [server_folder / "u", server_folder / "h"]

    def without_row():
        known = store.all_file_names()
        return sum(p.name not in known for folder in folders for p in folder.iterdir() if not p.name.startswith("."))

    before = without_row()
    AnalysisFiles(*folders).sweep_orphans(store.all_file_names(), grace_seconds=0)
    return {"files_without_row_before_sweep": before, "files_without_row_after_sweep": without_row()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--soak", type=int, default=1000)
    parser.add_argument("--models", default=str(ROOT / "models"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "robustness.json"))
    parser.add_argument("--database", default=None,
                        help="a PostgreSQL URL to test against (default: a SQLite file in the server's folder)")
    args = parser.parse_args(argv)
    images = test_images(12)
    report = {}
    os.environ["SKINLESION_MAX_REQUESTS"] = "0"  # measure growth without recycling
    extra = {"SKINLESION_DATABASE": args.database, "SKINLESION_SECRET_KEY": "loadtest-" + "k" * 48} if args.database else {}
    server = Gunicorn(2, args.models, extra)
    try:
        report["concurrency"] = concurrency_run(server, images, args.requests, args.concurrency)
        print("concurrency", report["concurrency"], flush=True)
        if args.soak:
            report["soak"] = soak(server, images, args.soak)
            print("soak growth %", report["soak"]["growth_percent_after_warmup"], flush=True)
        report["kill"] = kill_mid_analysis(server, images, args.database)
        print("kill", report["kill"], flush=True)
    finally:
        server.stop()
    report["database"] = "postgresql" if args.database else "sqlite"
    report["kill"].update(orphans_after_restart(server.folder, args.database))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
