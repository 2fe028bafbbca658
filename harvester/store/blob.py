"""A blob store rooted at a local directory or an S3 prefix, through pyarrow filesystems."""

from __future__ import annotations

import contextlib
import posixpath
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from harvester.errors import ConfigurationError, StorageError


class BlobStore:
    """Paths are relative, '/'-separated and may not climb out of the root."""

    def __init__(self, fs: pafs.FileSystem, root: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")

    @classmethod
    def from_url(cls, url: str, s3_endpoint: str | None = None) -> BlobStore:
        """`file:///abs/path`, `s3://bucket/prefix` or a plain local path."""
        if url.startswith("s3://"):
            bucket_prefix = url.removeprefix("s3://").strip("/")
            fs = (
                pafs.S3FileSystem(endpoint_override=s3_endpoint)
                if s3_endpoint
                else pafs.S3FileSystem()
            )
            return cls(fs, bucket_prefix)
        if url.startswith("file://"):
            url = url.removeprefix("file://")
        elif "://" in url:
            raise ConfigurationError(f"unsupported storage URL scheme: {url.split('://')[0]}")
        root = Path(url).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        return cls(pafs.LocalFileSystem(), str(root))

    def path(self, relative: str) -> str:
        """The filesystem path of a relative blob path; refuses anything outside the root."""
        clean = posixpath.normpath("/" + relative).lstrip("/")
        if clean in ("", ".") or clean.startswith(".."):
            raise StorageError(f"invalid blob path {relative!r}")
        return f"{self.root}/{clean}"

    def write_parquet(self, relative: str, table: pa.Table) -> int:
        """Write a Parquet file atomically (temporary name, then rename); returns its size."""
        final = self.path(relative)
        temporary = f"{final}.tmp-{uuid.uuid4().hex}"
        self.fs.create_dir(posixpath.dirname(final), recursive=True)
        try:
            pq.write_table(table, temporary, filesystem=self.fs, compression="zstd")
            self.fs.move(temporary, final)
        except OSError as exc:
            raise StorageError(f"cannot write {relative}: {exc}") from exc
        size: int = self.fs.get_file_info(final).size
        return size

    def list(self, prefix: str) -> list[str]:
        """Relative paths of the files under `prefix`."""
        selector = pafs.FileSelector(self.path(prefix), allow_not_found=True, recursive=True)
        start = len(self.root) + 1
        return sorted(
            info.path[start:]
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.File
        )

    def delete(self, relative: str) -> None:
        """Remove a file if it exists."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self.path(relative))

    def read_parquet(self, relative: str) -> pa.Table:
        """Read a whole Parquet file."""
        return pq.read_table(self.path(relative), filesystem=self.fs)
