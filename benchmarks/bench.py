"""Performance benchmark: per-stage times, HTTP latency, gunicorn throughput, memory, cold start.

    python benchmarks/bench.py [--images 30] [--out docs/performance.json]

Everything runs on loopback and ends by itself in a few minutes. Absolute times drift
between machines, so every figure is also given as a ratio to this machine's bare
MobileNetV2-224 single-image forward pass (a tf.function, random weights: the reference every
earlier figure used, so this script needs TensorFlow though the server it measures does not).
"""
import argparse
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SIZES = [(150, 200), (450, 600), (768, 1024), (1200, 1600)]  # height, width
# The sizes clinics' cameras give, each timed on its own over HTTP (issue 14's targets).
CLINIC_SIZES = [(576, 768), (1200, 1600)]
HTTP_REQUESTS = 30
THROUGHPUT_REQUESTS = 16


def percentile(values, q):
    return float(np.percentile(np.asarray(values, float), q))


def summary(values):
    return {"median_ms": round(statistics.median(values) * 1000, 1), "p90_ms": round(percentile(values, 90) * 1000, 1)}


def test_images(count, sizes=SIZES):
    """JPEG bytes of the example lesions at several sizes (real content, varied size)."""
    from PIL import Image
    examples = sorted((ROOT / "static" / "examples").glob("*.jpg"))
    images = []
    for index in range(count):
        source = Image.open(examples[index % len(examples)]).convert("RGB")
        height, width = sizes[index % len(sizes)]
        buffer = io.BytesIO()
        source.resize((width, height), Image.BILINEAR).save(buffer, "JPEG", quality=90)
        images.append(buffer.getvalue())
    return images


def bare_forward_seconds(repeats=50):
    import keras
    import tensorflow as tf
    model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    forward = tf.function(lambda x: model(x, training=False),
                          input_signature=[tf.TensorSpec((1, 224, 224, 3), tf.float32)])
    x = tf.random.uniform((1, 224, 224, 3))
    for _ in range(5):
        forward(x)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        forward(x).numpy()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bare_in_subprocess():
    """bare_forward_seconds in a fresh process (this one may hold other models' threads)."""
    code = ("import sys; sys.path.insert(0, 'benchmarks'); import bench; "
            "print(bench.bare_forward_seconds(repeats=100))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def stage_times(images, models_dir, task):
    """Each stage of one analysis, timed separately, as skinlesion.analysis runs them."""
    from skinlesion.analysis import ANALYSIS_MAX_SIDE, Analyzer
    from skinlesion.imageio import load_image
    from webapp.files import AnalysisFiles
    from skinlesion.preprocess import preprocess
    from webapp.store import Store, new_record
    analyzer = Analyzer(models_dir, tasks=(task,))
    analyzer.warm_up()
    classifier = analyzer.classifier(task)
    store = Store(Path(tempfile.mkdtemp()) / "bench.sqlite3")
    folder = Path(tempfile.mkdtemp())
    files = AnalysisFiles(folder, folder)
    stages = {name: [] for name in ("decode", "preprocess", "segment", "classify_gradcam_and_gate",
                                    "saliency", "images_written", "store_write", "whole_analysis")}

    def timed(name, function, *args):
        started = time.perf_counter()
        value = function(*args)
        stages[name].append(time.perf_counter() - started)
        return value

    for index, data in enumerate(images):
        image = timed("decode", lambda: load_image(data, max_side=ANALYSIS_MAX_SIDE))
        prepared = timed("preprocess", preprocess, image, classifier.steps)
        segmentation = timed("segment", analyzer.segmenter, prepared)
        crop = classifier.input_for(prepared, segmentation.mask if segmentation.found else None)
        # One pass: the test-time views' probabilities, the Grad-CAM and the whole image's
        # features for the dermoscopy gate (skinlesion.classify).
        explained = timed("classify_gradcam_and_gate", classifier.explain, crop, False,
                          classifier.whole_input(prepared))
        timed("saliency", classifier.saliency, crop, explained["class_index"])
        result = analyzer.analyze(image, task)
        timed("images_written", files.write, f"b{index}", data, result)
        timed("store_write", store.add, new_record(result.summary(), id=f"b{index}", files={},
                                                   original_name="x", image_sha256="", case_ref=None,
                                                   note=None, owner=None))
        timed("whole_analysis", lambda: files.write(f"w{index}", data, analyzer.analyze(data, task)))
    return {name: summary(values) for name, values in stages.items()}


def app_start_seconds(models_dir, repeats=3):
    """Seconds from launching `python app.py` until it answers /api/health (median of `repeats`)."""
    times = []
    for _ in range(repeats):
        port, folder = free_port(), Path(tempfile.mkdtemp())
        env = dict(os.environ, SKINLESION_PORT=str(port), SKINLESION_MODELS_DIR=str(models_dir),
                   SKINLESION_UPLOAD_DIR=str(folder / "u"), SKINLESION_HEATMAP_DIR=str(folder / "h"),
                   SKINLESION_DATABASE=str(folder / "db.sqlite3"))
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while time.perf_counter() - started < 120:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2).read()
                    times.append(time.perf_counter() - started)
                    break
                except OSError:
                    time.sleep(0.05)
        finally:  # SIGTERM: a background job's children ignore SIGINT
            process.terminate()
            process.wait(timeout=30)
    return round(statistics.median(times), 2) if times else None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def multipart(data, task):
    boundary = "----bench" + os.urandom(8).hex()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"task\"\r\n\r\n{task}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post(url, data, task):
    body, content_type = multipart(data, task)
    request = urllib.request.Request(url + "/api/analyze", data=body, headers={"Content-Type": content_type})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as response:
        response.read()
        status = response.status
    return time.perf_counter() - started, status


class Gunicorn:
    def __init__(self, workers, models_dir, extra_env=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder = Path(tempfile.mkdtemp())
        env = dict(os.environ, SKINLESION_BIND=f"127.0.0.1:{self.port}", SKINLESION_WORKERS=str(workers),
                   SKINLESION_THREADS="2", SKINLESION_MODELS_DIR=str(models_dir),
                   SKINLESION_UPLOAD_DIR=str(self.folder / "u"), SKINLESION_HEATMAP_DIR=str(self.folder / "h"),
                   SKINLESION_DATABASE=str(self.folder / "db.sqlite3"), SKINLESION_MAX_REQUESTS="0",
                   SKINLESION_REQUIRE_LOGIN="never")  # loopback measurement, nobody else on it
        env.update(extra_env or {})
        self.started = time.perf_counter()
        self.process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                                         "app:create_app()"], cwd=ROOT, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.cold_start = self._wait(workers)

    def _wait(self, workers, timeout=240):
        """Seconds from launch until every worker has answered (workers load in parallel)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.url + "/api/health", timeout=5).read()
                if len(self.worker_pids()) >= workers:
                    return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not start")

    def worker_pids(self):
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(p) for p in children.read_text().split()] if children.exists() else []

    def peak_rss_mb(self):
        peaks = []
        for pid in self.worker_pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        return [round(p) for p in peaks]

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


def run_concurrently(job, count, concurrency):
    """Call job(index) for index in range(count) from `concurrency` threads.

    Returns (results in completion order, elapsed seconds).
    """
    lock, results, queue = threading.Lock(), [], list(range(count))

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                index = queue.pop()
            result = job(index)
            with lock:
                results.append(result)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, time.perf_counter() - started


def throughput(url, images, task, concurrency, requests):
    results, elapsed = run_concurrently(lambda i: post(url, images[i % len(images)], task), requests, concurrency)
    latencies = [seconds for seconds, _ in results]
    return {"analyses_per_second": round(requests / elapsed, 3), "p50_ms": round(percentile(latencies, 50) * 1000),
            "non_200": sum(status != 200 for _, status in results)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--task", default="7class")
    parser.add_argument("--models", default=str(ROOT / "models"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "performance.json"))
    parser.add_argument("--skip-gunicorn", action="store_true")
    parser.add_argument("--skip-stages", action="store_true",
                        help="HTTP figures only (e.g. to measure an older checkout with this script)")
    args = parser.parse_args(argv)
    images = test_images(args.images)

    # The reference drifts with the machine's state (14-19 ms between runs here): it is taken
    # in a subprocess before and after the rest, and the multiples use their mean.
    bare_before = bare_in_subprocess()
    report = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
              "images": args.images, "sizes": [f"{w}x{h}" for h, w in SIZES]}
    report["stages"] = {} if args.skip_stages else stage_times(images, args.models, args.task)

    report["python_app_py_answers_after_s"] = app_start_seconds(args.models)
    if not args.skip_gunicorn:
        server = Gunicorn(1, args.models)
        report["cold_start_1_worker_s"] = round(server.cold_start, 2)
        post(server.url, images[0], args.task)
        http = [post(server.url, images[i % len(images)], args.task)[0] for i in range(HTTP_REQUESTS)]
        report["http_analysis"] = summary(http)
        for height, width in CLINIC_SIZES:
            sized = test_images(4, [(height, width)])
            times = [post(server.url, sized[i % 4], args.task)[0] for i in range(HTTP_REQUESTS)]
            report[f"http_analysis_{width}x{height}"] = summary(times)
        report["throughput"] = {"1_worker": {f"c{c}": throughput(server.url, images, args.task, c, THROUGHPUT_REQUESTS)
                                             for c in (1, 2, 4)}}
        report["peak_rss_mb"] = {"1_worker": server.peak_rss_mb()}
        server.stop()
        server = Gunicorn(2, args.models)
        report["cold_start_2_workers_s"] = round(server.cold_start, 2)
        for _ in range(4):
            post(server.url, images[0], args.task)
        report["throughput"]["2_workers"] = {f"c{c}": throughput(server.url, images, args.task, c, THROUGHPUT_REQUESTS)
                                             for c in (1, 2, 4)}
        report["peak_rss_mb"]["2_workers"] = server.peak_rss_mb()
        server.stop()

    bare_after = bare_in_subprocess()
    bare = (bare_before + bare_after) / 2
    report["bare_mobilenetv2_224_forward_ms"] = round(bare * 1000, 2)
    report["bare_ms_before_and_after"] = [round(bare_before * 1000, 2), round(bare_after * 1000, 2)]

    def ratio(ms):
        return round(ms / (bare * 1000), 2)

    print(f"bare MobileNetV2-224 forward: {bare * 1000:.1f} ms (= 1.0x; {bare_before * 1000:.1f} before "
          f"the rest, {bare_after * 1000:.1f} after)")
    print(f"{'stage':<18}{'median ms':>11}{'p90 ms':>9}{'x bare':>8}")
    for name, values in report["stages"].items():
        values["median_x_bare"] = ratio(values["median_ms"])
        print(f"{name:<18}{values['median_ms']:>11.1f}{values['p90_ms']:>9.1f}{values['median_x_bare']:>8.1f}")
    if "http_analysis" in report:
        http = report["http_analysis"]
        http["p50_x_bare"], http["p90_x_bare"] = ratio(http["median_ms"]), ratio(http["p90_ms"])
        print(f"HTTP analysis: p50 {http['median_ms']:.0f} ms ({http['p50_x_bare']}x), "
              f"p90 {http['p90_ms']:.0f} ms ({http['p90_x_bare']}x)")
        for height, width in CLINIC_SIZES:
            sized = report[f"http_analysis_{width}x{height}"]
            sized["p50_x_bare"] = ratio(sized["median_ms"])
            print(f"HTTP analysis of {width}x{height}: p50 {sized['median_ms']:.0f} ms ({sized['p50_x_bare']}x)")
        for workers, rows in report["throughput"].items():
            print(workers, {c: r["analyses_per_second"] for c, r in rows.items()})
        best1 = max(r["analyses_per_second"] for r in report["throughput"]["1_worker"].values())
        best2 = max(r["analyses_per_second"] for r in report["throughput"]["2_workers"].values())
        report["throughput_ratio_2_to_1_workers"] = round(best2 / best1, 2)
        print(f"2 workers / 1 worker throughput: {report['throughput_ratio_2_to_1_workers']}x; "
              f"peak RSS MB {report['peak_rss_mb']}; cold start {report['cold_start_1_worker_s']} s "
              f"(1 worker), {report['cold_start_2_workers_s']} s (2)")
    print(f"python app.py answered /api/health after {report['python_app_py_answers_after_s']} s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
