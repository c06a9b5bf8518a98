"""Render a run's report.html in headless Chromium and save a full-page screenshot.

Checks what a person would see: the self-contained report opens offline and shows every
section. Needs Debian's chromium (`apt-get install chromium`).

    python benchmarks/render_report.py runs/main/report.html [-o screenshot.png]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def render(report: Path, screenshot: Path, width: int = 1200, height: int = 6000) -> Path:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium not found: apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={screenshot.resolve()}",
            report.resolve().as_uri(),
        ]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return screenshot


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=None)
    args = parser.parse_args()
    out = args.output or args.report.with_name("report_screenshot.png")
    render(args.report, out)
    text = args.report.read_text()
    sections = text.count("<section")
    images = text.count("data:image/png;base64,")
    print(
        f"screenshot: {out} ({out.stat().st_size:,} bytes); sections: {sections}; "
        f"embedded pictures: {images}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
