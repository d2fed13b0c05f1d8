"""Make sure a Chromium and axe-core are there for the Playwright tests.

Debian's chromium (/usr/bin/chromium) is preferred: it installs from the
distribution's packages where downloading browser builds is not possible.
Elsewhere, Playwright's own Chromium is downloaded. axe-core, the
accessibility checker the browser tests run in every page, comes from the
npm registry into .tools/axe/ (git-ignored); without npm those tests skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
AXE_VERSION = "4.14.1"
AXE_DIR = Path(__file__).resolve().parent.parent / ".tools" / "axe"
AXE_SCRIPT = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"


def ensure_axe() -> int:
    """Install axe-core (pinned) into .tools/axe/ unless it is there already."""
    installed = AXE_DIR / "node_modules" / "axe-core" / "package.json"
    if installed.exists() and f'"version": "{AXE_VERSION}"' in installed.read_text():
        return 0
    npm = shutil.which("npm")
    if npm is None:
        print("npm not found: the accessibility checks will be skipped.", file=sys.stderr)
        return 0
    AXE_DIR.mkdir(parents=True, exist_ok=True)
    command = [npm, "install", "--no-audit", "--no-fund", "--prefix", str(AXE_DIR)]
    return subprocess.run([*command, f"axe-core@{AXE_VERSION}"], check=False).returncode


def main() -> int:
    if ensure_axe() != 0:
        return 1
    if DEBIAN_CHROMIUM.exists():
        return 0
    if shutil.which("apt-get") and os.geteuid() == 0:
        print("Installing Debian's chromium for the browser tests...", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env)
        return 0
    print("Installing Playwright's Chromium for the browser tests...", file=sys.stderr)
    command = [sys.executable, "-m", "playwright", "install", "chromium"]
    return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
