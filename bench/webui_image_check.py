"""Measure what checking an upload costs the web UI, and what re-encoding it would add.

Four PNGs Pillow reads but TensorFlow's decoder refuses once reached the model service. Two
ways to stop them: check the PNG's chunks as libpng does (what webui/validation.py does), or
re-encode every accepted image to a clean PNG before proxying. This times both on what the
page sends: a 280x280 RGBA PNG of an MNIST test digit drawn dark on light (MNIST_DIR).

Usage:
    python bench/webui_image_check.py [--repeat 5] [--number 300]

Prints the best of --repeat rounds of --number calls each, in milliseconds per image, with
the machine's load average: numbers depend on the machine. Not run by CI.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import timeit
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.webui_latency import test_pngs  # noqa: E402
from contract import CANVAS_EXPORT_SIDE  # noqa: E402
from training import data  # noqa: E402
from webui import validation  # noqa: E402


def reencode(png: bytes, level: int) -> bytes:
    image = Image.open(io.BytesIO(png))
    image.load()
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=level)
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the best is shown")
    parser.add_argument("--number", type=int, default=300, help="calls per round")
    args = parser.parse_args(argv)
    png = test_pngs(str(data.locate()), count=1)[0]  # the same drawing bench/webui_latency sends
    ways = {
        "check_png_chunks (the libpng rules)": lambda: validation.check_png_chunks(png),
        "check_image (all checks, as served)": lambda: validation.check_image(png, 2048),
        "re-encode, Pillow's default level 6": lambda: reencode(png, 6),
        "re-encode, level 1": lambda: reencode(png, 1),
    }
    print(f"{len(png)}-byte {CANVAS_EXPORT_SIDE}x{CANVAS_EXPORT_SIDE} RGBA PNG; best of "
          f"{args.repeat} x {args.number} calls; load average {os.getloadavg()[0]:.1f}")
    for name, call in ways.items():
        best = min(timeit.repeat(call, number=args.number, repeat=args.repeat))
        print(f"  {name:38} {best / args.number * 1000:7.3f} ms")


if __name__ == "__main__":
    main()
