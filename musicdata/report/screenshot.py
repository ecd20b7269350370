"""Screenshot a rendered report with headless Chromium, the way a reader sees it.

    python -m musicdata.report.screenshot musicdata-home/report/index.html docs/report.png

Chromium captures one window, so the page is shot in a tall window and the empty background
below the last section is cropped away; `--max-height` keeps only the top of a long page. This
is how `docs/report.png` is made (a developer tool: nothing in the pipeline calls it).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

BACKGROUND = (246, 247, 249)  # the page's background colour (html.CSS body)
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    msg = f"no headless browser found (tried {', '.join(BROWSERS)}); install chromium"
    raise FileNotFoundError(msg)


def screenshot(
    index: Path,
    out: Path,
    *,
    width: int = 1400,
    window: int = 16000,
    max_height: int = 0,
    colors: int = 256,
) -> Path:
    """Shoot `index` at `width` CSS pixels into `out` (PNG), cropped below the page's content
    and to `max_height` pixels when given, reduced to a `colors` palette (0: full colour; a
    palette keeps a full page well under a megabyte, plots and text stay sharp); returns `out`."""
    from PIL import Image

    index = Path(index).resolve()
    if not index.is_file():
        msg = f"{index}: no such report page; render one with `musicdata report` first"
        raise FileNotFoundError(msg)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.png"
        cmd = [
            find_browser(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={raw}",
            f"--window-size={width},{window}",
            index.as_uri(),
        ]
        # A fixed argument list, no shell: the only inputs are two paths.
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        img = Image.open(raw).convert("RGB")
        bottom = _content_bottom(img)
        if max_height:
            bottom = min(bottom, max_height)
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shot = img.crop((0, 0, img.width, bottom))
        if colors:
            shot = shot.quantize(colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        shot.save(out, optimize=True)
    return out


def _content_bottom(img: object) -> int:
    """Last row (plus a margin) that holds anything but the page background."""
    import numpy as np

    px = np.asarray(img)
    rows = np.nonzero((px != np.array(BACKGROUND, dtype=px.dtype)).any(axis=(1, 2)))[0]
    return int(min(px.shape[0], rows[-1] + 24)) if len(rows) else px.shape[0]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("index", type=Path, help="the report's index.html")
    ap.add_argument("out", type=Path, help="PNG to write")
    ap.add_argument("--width", type=int, default=1400, help="window width in CSS pixels")
    ap.add_argument("--max-height", type=int, default=0, help="keep only the top N pixels")
    ap.add_argument("--colors", type=int, default=256, help="palette size; 0 for full colour")
    args = ap.parse_args(argv)
    path = screenshot(
        args.index, args.out, width=args.width, max_height=args.max_height, colors=args.colors
    )
    print(f"{path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
