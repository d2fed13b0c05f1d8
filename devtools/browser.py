"""Make sure a Chromium is there for the Playwright tests.

Debian's chromium (/usr/bin/chromium) is preferred: it installs from the
distribution's packages where downloading browser builds is not possible.
Elsewhere, Playwright's own Chromium is downloaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

DEBIAN_CHROMIUM = Path("/usr/bin/chromium")


def main() -> int:
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
