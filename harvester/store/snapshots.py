"""Committed snapshots in the blob store: layout, lookup, reading and verified download.

A version exists once its `manifest.json` exists; anything else under `datasets/` is the
leftover of a build that did not finish and is never read.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pyarrow as pa

from harvester.errors import NotFound, StorageError
from harvester.store.blob import BlobStore
from harvester.store.layout import CARD, MANIFEST, SIGNATURES, inside, version_prefix
from harvester.store.manifest import FileEntry, Manifest

_VERSION_DIR = re.compile(r"^v([1-9]\d*)$")


class Snapshots:
    """Read access to the committed versions of every dataset."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store
        self._manifests: dict[tuple[str, int], Manifest] = {}

    def datasets(self) -> list[str]:
        """Names of datasets with at least one committed version."""
        return [name for name in self.store.subdirectories("datasets") if self.versions(name)]

    def versions(self, dataset: str) -> list[int]:
        """Committed versions of a dataset, ascending."""
        found = []
        for entry in self.store.subdirectories(f"datasets/{dataset}"):
            match = _VERSION_DIR.match(entry)
            if match and self.store.exists(f"datasets/{dataset}/{entry}/{MANIFEST}"):
                found.append(int(match.group(1)))
        return sorted(found)

    def latest(self, dataset: str) -> int | None:
        """The highest committed version, or None."""
        versions = self.versions(dataset)
        return versions[-1] if versions else None

    def resolve(self, dataset: str, version: int | None) -> int:
        """A concrete committed version (`None` means latest); NotFound otherwise."""
        if version is None:
            latest = self.latest(dataset)
            if latest is None:
                raise NotFound(f"dataset {dataset!r} has no snapshot")
            return latest
        if not self.store.exists(f"{version_prefix(dataset, version)}/{MANIFEST}"):
            raise NotFound(f"dataset {dataset!r} has no version {version}")
        return version

    def manifest(self, dataset: str, version: int | None = None) -> Manifest:
        """The manifest of a committed version (latest by default)."""
        version = self.resolve(dataset, version)
        key = (dataset, version)
        cached = self._manifests.get(key)
        if cached is None:
            raw = self.store.read_bytes(f"{version_prefix(dataset, version)}/{MANIFEST}")
            # Published versions never change, so a parsed manifest is good forever.
            cached = self._manifests[key] = Manifest.model_validate_json(raw)
        return cached

    def documents(self, manifest: Manifest, columns: list[str] | None = None) -> pa.Table:
        """Every row of a snapshot (all splits)."""
        prefix = version_prefix(manifest.dataset, manifest.version)
        paths = [f"{prefix}/{f.path}" for f in manifest.files if f.split is not None]
        return self.store.read_parquet(paths, columns=columns)

    def signatures(self, manifest: Manifest) -> pa.Table:
        """The (id, minhash) index kept beside the data for dedup against this version."""
        return self.store.read_parquet(
            f"{version_prefix(manifest.dataset, manifest.version)}/{SIGNATURES}"
        )

    def download(self, dataset: str, version: int | None, target: Path) -> Manifest:
        """Copy a version's files to `target/<name>/v<N>/`, verifying each sha256."""
        manifest = self.manifest(dataset, version)
        prefix = version_prefix(dataset, manifest.version)
        root = target / dataset / f"v{manifest.version}"
        for entry in manifest.files:
            self._copy_verified(f"{prefix}/{entry.path}", inside(root, entry.path), entry)
        inside(root, CARD).write_bytes(self.store.read_bytes(f"{prefix}/{CARD}"))
        inside(root, MANIFEST).write_bytes(manifest.to_json())
        return manifest

    def _copy_verified(self, source: str, dest: Path, entry: FileEntry) -> None:
        digest, size = hashlib.sha256(), 0
        partial = dest.with_name(dest.name + ".part")
        with self.store.open_input(source) as stream, partial.open("wb") as out:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        if size != entry.bytes or digest.hexdigest() != entry.sha256:
            partial.unlink()
            raise StorageError(f"{entry.path}: checksum mismatch against the manifest")
        partial.replace(dest)
