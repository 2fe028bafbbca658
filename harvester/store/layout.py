"""Where a snapshot's files live and how users name a version: no I/O beyond making the
directories a download writes into, and nothing heavy to import (the CLI's remote commands
use it)."""

from __future__ import annotations

import re
from pathlib import Path

from harvester.errors import NotFound, StorageError

MANIFEST = "manifest.json"
CARD = "README.md"
SIGNATURES = "index/minhash.parquet"
_REF = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,99})(?:@(?P<version>v?\d+|latest))?$")


def version_prefix(dataset: str, version: int) -> str:
    """`datasets/<name>/v<N>`."""
    return f"datasets/{dataset}/v{version}"


def parse_ref(ref: str) -> tuple[str, int | None]:
    """`NAME`, `NAME@vN`, `NAME@N` or `NAME@latest` → (name, version or None for latest)."""
    match = _REF.match(ref)
    if match is None:
        raise NotFound(f"not a dataset reference: {ref!r} (expected NAME or NAME@vN)")
    version = match.group("version")
    if version in (None, "latest"):
        return match.group("name"), None
    return match.group("name"), int(version.lstrip("v"))


def inside(root: Path, relative: str) -> Path:
    """`root/relative`, refusing paths that climb out of `root` (a hostile manifest)."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise StorageError(f"refusing to write outside {root}: {relative!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
