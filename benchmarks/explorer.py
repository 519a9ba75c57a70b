"""The explorer's latency (issues 8, 19): app ready <= 10 s; one upload to every view, with the
interactive charts against the PNG figures they replaced, and against the probe itself.

    python benchmarks/explorer.py            # writes benchmarks/results/explorer-cpu.json
    python benchmarks/explorer.py --quick    # fewer repeats, a smoke run

Rows:
- ``decode+convert``: upload bytes -> upright image -> model input tensor, for a gallery PNG
  (28x28), a 12-megapixel phone JPEG (4032x3024, EXIF-rotated) and a 16-bit PNG (1024x768);
  the same functions the app calls (gsoplib/images.py).
- ``upload to all views``: decode+convert of an upload (a 12-megapixel phone JPEG), then every
  view but the attributions, two ways timed in turn in one run: ``ms`` the interactive path the
  app takes (explorer/pipeline.py ``all_charts``: the probe and every chart, converted to the
  Vega-Lite spec and Arrow data Streamlit sends, as ``st.vega_lite_chart`` does), ``png_ms`` the
  PNG path it replaced (the probe and every figure rendered to PNG); ``views_ms`` and
  ``views_png_ms`` the same two from the decoded input tensor on (without the decode both
  share, which bounds the ratio of a model with few views); ``probe_ms`` the probe
  alone and ``forward_ms`` the model's plain forward pass on the same input tensor;
  ``attributions_ms`` Grad-CAM and Occlusion with their chart, on their own (extra passes by
  nature), ``attributions_png_ms`` with their figure instead. Every bundled checkpoint, after
  its warm-up (the app warms a model when it loads it), one torch thread as in the app.
- ``upload to all views, ImageNet size``: the same for a ResNet-50 GSoP-Net1 at 224 (seeded
  weights; 1000 classes; resize 256, crop 224), as a converted checkpoint of the authors'
  weights, converted from a file in the authors' layout with gsoplib.convert
  (tests/imagenet_checkpoint.py; the cost does not depend on the weights).
- ``server ready``: ``streamlit run`` launched -> ``/_stcore/health`` answers "ok", and then the
  first complete script run of a fresh session (AppTest in a fresh interpreter: imports, the
  sidebar, the default gallery image), together the time a user waits for the app.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))
# ROOT first: this script's own name would otherwise shadow the explorer package.
sys.path.insert(0, str(ROOT))
from gsoplib.explorer import pipeline  # noqa: E402
from harness import (  # noqa: E402
    machine_info,
    machine_label,
    markdown_table,
    median_time,
    round_robin_medians,
    write_json,
)
from streamlit.dataframe_util import convert_anything_to_arrow_bytes  # noqa: E402

from gsoplib.images import crop_box, decode_image, to_model_image, to_tensor  # noqa: E402
from gsoplib.viz import charts  # noqa: E402

APP = ROOT / "explorer" / "app.py"
FIRST_RUN = """
import sys, time
begin = time.perf_counter()
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=60).run()
assert not at.exception, at.exception
print(time.perf_counter() - begin)
"""


def phone_jpeg() -> bytes:
    """A 12-megapixel photo-like JPEG (smooth gradients plus noise) stored rotated."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:3024, 0:4032]
    base = np.stack([x / 16, y / 12, (x + y) / 28], axis=-1) % 256
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90, exif=exif)
    return buffer.getvalue()


def deep_png() -> bytes:
    ramp = (np.arange(1024 * 768, dtype=np.uint32).reshape(768, 1024) % 65536).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, "PNG")
    return buffer.getvalue()


def decode_rows(repeats: int) -> list[dict]:
    gallery = (ROOT / "explorer" / "gallery" / "fashion_mnist" / "9-00000.png").read_bytes()
    files = {
        "gallery PNG 28x28": gallery,
        "phone JPEG 4032x3024": phone_jpeg(),
        "16-bit PNG 1024x768": deep_png(),
    }
    rows = []
    for label, data in files.items():

        def run(data=data) -> torch.Tensor:
            picture = to_model_image(decode_image(data).image, 1, (28, 28))
            return to_tensor(picture, (0.286,), (0.353,))

        seconds = median_time(run, torch.device("cpu"), warmup=1, repeats=repeats)
        rows.append({"step": "decode+convert", "input": label, "bytes": len(data),
                     "ms": 1e3 * seconds})
    return rows


def checkpoints() -> dict[str, object]:
    """Name -> loaded checkpoint, for every bundled one."""
    from gsoplib.pretrained import list_pretrained, load_pretrained

    return {name: load_pretrained(name) for name in list_pretrained()}


def sent_bytes(chart) -> int:
    """Bytes of the Vega-Lite spec and Arrow datasets the app sends for ``chart``: what
    ``st.vega_lite_chart`` does with the spec the views pass it."""
    import json

    spec = charts.vega_lite(chart)
    data = spec.pop("datasets", {})
    return len(json.dumps(spec)) + sum(len(convert_anything_to_arrow_bytes(v))
                                       for v in data.values())


def upload_row(step: str, label: str, ckpt, data: bytes, repeats: int) -> dict:
    """Every view of one upload through ``ckpt``, the interactive and the PNG way, in turn."""
    lock = threading.Lock()
    pipeline.warm_up(ckpt, lock)
    size, resize = tuple(ckpt.input_size), ckpt.resize

    def upload():
        decoded = decode_image(data)
        picture = to_model_image(decoded.image, ckpt.in_chans, size, resize=resize)
        preview = decoded.image.copy()
        preview.thumbnail((320, 320))
        scale = preview.width / decoded.image.width
        box = tuple(scale * v for v in crop_box(decoded.image.size, size, resize=resize))
        return to_tensor(picture, ckpt.mean, ckpt.std), preview, box

    def views_interactive(tensor, preview, box):
        return sum(sent_bytes(c) for c in
                   pipeline.all_charts(ckpt, lock, tensor, preview, box).values())

    def views_png(tensor):
        insp = pipeline.inspect(ckpt, lock, tensor)
        out = {"prediction": pipeline.prediction_png(insp)}
        for record in insp.parts():
            out.update(pipeline.block_pngs(insp, record.path))
        return out

    def interactive():
        return views_interactive(*upload())

    def pngs():
        return views_png(upload()[0])

    tensor, preview, box = upload()
    model = ckpt.model

    def forward():
        with torch.no_grad():
            model(tensor[None])

    def attributions_chart():
        return sent_bytes(pipeline.attribution_charts(ckpt, lock, tensor, preview, box))

    def attributions_png():
        insp = pipeline.inspect(ckpt, lock, tensor)
        maps = pipeline.attributions(ckpt, lock, tensor, insp.top[0][0].index)
        return pipeline.attribution_png(tensor, maps)

    medians = round_robin_medians(
        {"interactive": interactive, "png": pngs, "forward": forward,
         "probe": lambda: pipeline.inspect(ckpt, lock, tensor),
         "views_interactive": lambda: views_interactive(tensor, preview, box),
         "views_png": lambda: views_png(tensor)},
        torch.device("cpu"), warmup=1, repeats=repeats)
    extra = round_robin_medians({"chart": attributions_chart, "png": attributions_png},
                                torch.device("cpu"), warmup=0, repeats=max(1, repeats // 2))
    figures = len(pngs()) + 1  # and the attributions' figure
    return {
        "step": step, "input": label, "figures": figures,
        "charts": len(pipeline.all_charts(ckpt, lock, tensor, preview, box)) + 1,
        "sent_kB": (interactive() + attributions_chart()) / 1e3,
        "ms": 1e3 * medians["interactive"], "png_ms": 1e3 * medians["png"],
        "probe_ms": 1e3 * medians["probe"], "forward_ms": 1e3 * medians["forward"],
        "speedup": medians["png"] / medians["interactive"],
        "views_ms": 1e3 * medians["views_interactive"],
        "views_png_ms": 1e3 * medians["views_png"],
        "views_speedup": medians["views_png"] / medians["views_interactive"],
        "x_probe": medians["interactive"] / medians["probe"],
        "x_forward": medians["interactive"] / medians["forward"],
        "attributions_ms": 1e3 * extra["chart"], "attributions_png_ms": 1e3 * extra["png"],
    }


def pipeline_rows(repeats: int, imagenet: bool = True) -> list[dict]:
    data = phone_jpeg()
    rows = [upload_row("upload to all views", f"phone JPEG, {name}", ckpt, data, repeats)
            for name, ckpt in checkpoints().items()]
    if imagenet:
        from imagenet_checkpoint import MODEL, save_imagenet_checkpoint

        from gsoplib.checkpoint import load_checkpoint

        with tempfile.TemporaryDirectory() as folder:
            ckpt = load_checkpoint(save_imagenet_checkpoint(Path(folder)))
        rows.append(upload_row("upload to all views, ImageNet size",
                               f"phone JPEG, {MODEL} at 224", ckpt, data, repeats))
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_ready_seconds() -> float:
    """``streamlit run`` launched -> the health endpoint answers "ok"."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
               "--server.port", str(port), "--server.address", "127.0.0.1",
               "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
               "--server.fileWatcherType", "none"]
    begin = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - begin < 60:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                            timeout=2) as reply:
                    if reply.read() == b"ok":
                        return time.perf_counter() - begin
            except OSError:
                time.sleep(0.05)
        raise SystemExit("streamlit did not answer its health check within 60 s")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def first_run_seconds() -> float:
    """A fresh interpreter's first complete run of the app script (imports included)."""
    out = subprocess.run([sys.executable, "-c", FIRST_RUN, str(APP)], capture_output=True,
                         text=True, check=True, cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--no-imagenet", action="store_true",
                        help="skip the ImageNet-size ResNet-50 (it writes a 100 MB checkpoint)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    repeats = 2 if args.quick else 5
    torch.set_num_threads(1)  # as the app does (explorer/app.py)
    load = os.getloadavg()[0]
    rows = decode_rows(repeats) + pipeline_rows(repeats, imagenet=not args.no_imagenet)
    server = min(server_ready_seconds() for _ in range(1 if args.quick else 3))
    first = min(first_run_seconds() for _ in range(1 if args.quick else 3))
    rows.append({"step": "server ready", "input": "streamlit run -> health ok", "ms": 1e3 * server})
    rows.append({"step": "first script run", "input": "fresh interpreter", "ms": 1e3 * first})
    rows.append({"step": "app ready", "input": "server + first run", "ms": 1e3 * (server + first)})
    info = machine_info(torch.device("cpu"))
    # These 2-core machines are shared: the load average says how much else was running.
    info["load_average_1min"] = load
    path = write_json("explorer", info, rows, args.out)
    print(f"{machine_label(info)}\n")
    print(markdown_table(rows, [("step", "step", "s"), ("input", "input", "s"),
                                ("figures", "figures", "d"), ("ms", "median ms", ".1f"),
                                ("png_ms", "PNG path ms", ".1f"), ("speedup", "x faster", ".1f"),
                                ("views_speedup", "x faster, decoded", ".1f"),
                                ("probe_ms", "probe ms", ".1f"), ("x_probe", "x probe", ".2f"),
                                ("forward_ms", "forward ms", ".1f"),
                                ("x_forward", "x forward", ".2f"),
                                ("attributions_ms", "attributions ms", ".0f")]))
    print(f"load average at the start: {load:.1f} on {os.cpu_count()} cores")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
