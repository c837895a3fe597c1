"""Memory a decode costs, for uploads made to cost the most (issue 29, item 4).

    python benchmarks/decode_memory.py [--out docs/decode_memory.json]

Each file is small on disk and passes the pixel limits; it is decoded as an upload is
(`load_image(data, max_side=ANALYSIS_MAX_SIDE)`) in a fresh process, whose peak resident
memory above its memory before the decode is the figure
(the peak is reset just before: Linux's /proc/self/clear_refs). Then 8 threads decode the worst
file at once in one process (what 8 concurrent uploads do to one server process), and
`python app.py` with the shipped models gets 8 concurrent uploads of each kind: its peak
resident memory is the figure (`--server`).
"""
import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SIDE = 7000  # 49 MP: under the 50 MP limit


def worst_case_files(side=SIDE):
    """{name: bytes}: nearly constant pixels, so each file is small and each decode large."""
    grey16 = np.full((side, side), 1000, np.uint16)
    grey16[::97, ::89] = 60000
    rgb = np.full((side, side, 3), 180, np.uint8)
    rgb[::97, ::89] = 40
    files = {}

    def save(name, image, fmt, **options):
        buffer = io.BytesIO()
        image.save(buffer, fmt, **options)
        files[name] = buffer.getvalue()

    save("16-bit greyscale PNG", Image.fromarray(grey16), "PNG")
    save("32-bit float TIFF", Image.fromarray(grey16.astype(np.float32)), "TIFF", compression="tiff_adobe_deflate")
    save("RGBA PNG", Image.fromarray(rgb).convert("RGBA"), "PNG")
    save("RGBA PNG, 24 MP", Image.fromarray(rgb[:4900, :4900]).convert("RGBA"), "PNG")
    save("RGB PNG", Image.fromarray(rgb), "PNG")
    save("MPO (JPEG frames)", Image.fromarray(rgb), "MPO", save_all=True, append_images=[Image.fromarray(rgb)])
    save("JPEG", Image.fromarray(rgb), "JPEG")
    return files


MEASURE = """
import sys, threading
sys.path.insert(0, {root!r})
from skinlesion.analysis import ANALYSIS_MAX_SIDE
from skinlesion.imageio import ImageError, load_image
def kb(field):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(field))
data = open({path!r}, "rb").read()
open("/proc/self/clear_refs", "w").write("5")  # the peak starts again from here (Linux)
before = kb("VmRSS:")
outcome = []
def decode():
    try:
        outcome.append(load_image(data, max_side=ANALYSIS_MAX_SIDE).shape)
    except ImageError as error:
        outcome.append(str(error))
threads = [threading.Thread(target=decode) for _ in range({copies})]
[t.start() for t in threads]; [t.join() for t in threads]
after = kb("VmHWM:")
print(round((after - before) / 1024), after // 1024, repr(outcome[0]))
"""


def peak_added_mb(data, copies=1):
    """(MB added to the peak by `copies` concurrent decodes, the peak in MB, what came out)."""
    with tempfile.NamedTemporaryFile(suffix=".img") as file:
        file.write(data)
        file.flush()
        code = MEASURE.format(root=str(ROOT), path=file.name, copies=copies)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    added, peak, outcome = out.strip().split(" ", 2)
    return int(added), int(peak), outcome


def server_peak_mb(files, concurrent, models):
    """`python app.py` (threaded, the shipped models): its peak resident memory in MB after
    it started, and after `concurrent` simultaneous uploads of each file, with the statuses."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench import free_port, multipart
    port, folder = free_port(), Path(tempfile.mkdtemp())
    env = dict(os.environ, SKINLESION_PORT=str(port), SKINLESION_MODELS_DIR=str(models),
               SKINLESION_DATABASE=str(folder / "db.sqlite3"), SKINLESION_UPLOAD_DIR=str(folder / "u"),
               SKINLESION_HEATMAP_DIR=str(folder / "h"))
    server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def peak():
        status = Path(f"/proc/{server.pid}/status").read_text()
        return int(next(l.split()[1] for l in status.splitlines() if l.startswith("VmHWM:"))) // 1024

    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "/api/health", timeout=5).read()
                break
            except OSError:
                time.sleep(0.2)
        figures = {"started_mb": peak()}
        for name, data in files.items():
            statuses = []

            def upload():
                body, content_type = multipart(data, "7class")
                request = urllib.request.Request(url + "/api/analyze", data=body,
                                                 headers={"Content-Type": content_type})
                try:
                    with urllib.request.urlopen(request, timeout=600) as response:
                        statuses.append(response.status)
                except urllib.error.HTTPError as error:
                    statuses.append(error.code)

            threads = [threading.Thread(target=upload) for _ in range(concurrent)]
            [t.start() for t in threads]
            [t.join() for t in threads]
            figures[name] = {"statuses": sorted(statuses), "peak_mb_so_far": peak()}
            print(name, figures[name], flush=True)
    finally:
        server.terminate()
        server.wait(timeout=60)
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrent", type=int, default=8)
    parser.add_argument("--server", action="store_true", help="also 8 concurrent uploads to python app.py")
    parser.add_argument("--models", default=str(ROOT / "models"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    figures = {}
    for name, data in worst_case_files().items():
        added, peak, outcome = peak_added_mb(data)
        figures[name] = {"file_kb": len(data) // 1024, "peak_added_mb": added, "result": outcome}
        print(name, figures[name], flush=True)
    worst = max(figures, key=lambda name: figures[name]["peak_added_mb"])
    added, peak, outcome = peak_added_mb(worst_case_files()[worst], copies=args.concurrent)
    figures["concurrent"] = {"file": worst, "decodes": args.concurrent, "peak_added_mb": added,
                             "process_peak_mb": peak}
    print(json.dumps(figures["concurrent"]))
    if args.server:
        figures["python_app_py"] = server_peak_mb(worst_case_files(), args.concurrent, args.models)
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
