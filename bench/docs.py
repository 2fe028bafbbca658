"""Real HTML for benchmarks: Debian's documentation packages, installed on demand.

python3.11-doc (~530 pages), postgresql-doc-15 (~1,170), git-doc (~200)
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

ROOTS = {
    "python3.11-doc": Path("/usr/share/doc/python3.11/html"),
    "postgresql-doc-15": Path("/usr/share/doc/postgresql-doc-15/html"),
    "git-doc": Path("/usr/share/doc/git-doc"),
}


def ensure_docs() -> dict[str, Path]:
    """The document roots, installing the Debian packages that are missing (needs root)."""
    missing = [pkg for pkg, root in ROOTS.items() if not root.exists()]
    if missing:
        if not shutil.which("apt-get"):
            raise SystemExit(f"install {' '.join(missing)} first")
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True)
    return dict(ROOTS)


def sample_pages(count: int, seed: int = 0) -> list[Path]:
    """A deterministic sample of HTML files across the three packages."""
    pages = sorted(p for root in ensure_docs().values() for p in root.rglob("*.html"))
    return random.Random(seed).sample(pages, min(count, len(pages)))
