"""A blob store rooted at a local directory or an S3 prefix, through pyarrow filesystems."""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
import uuid
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from harvester.errors import ConfigurationError, NotFound, StorageError


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

    def write_parquet(
        self, relative: str, table: pa.Table, row_group_size: int | None = None
    ) -> int:
        """Write a Parquet file atomically (temporary name, then rename); returns its size."""
        final = self.path(relative)
        temporary = f"{final}.tmp-{uuid.uuid4().hex}"
        try:
            self.fs.create_dir(posixpath.dirname(final), recursive=True)
            pq.write_table(
                table,
                temporary,
                filesystem=self.fs,
                compression="zstd",
                row_group_size=row_group_size,
            )
            self.fs.move(temporary, final)
        except OSError as exc:
            self._forget(temporary)
            raise StorageError(f"cannot write {relative}: {exc}") from exc
        size: int = self.fs.get_file_info(final).size
        return size

    def write_bytes(self, relative: str, data: bytes) -> None:
        """Write a small file atomically (temporary name, then rename)."""
        final = self.path(relative)
        temporary = f"{final}.tmp-{uuid.uuid4().hex}"
        try:
            self.fs.create_dir(posixpath.dirname(final), recursive=True)
            with self.fs.open_output_stream(temporary) as out:
                out.write(data)
            self.fs.move(temporary, final)
        except OSError as exc:
            self._forget(temporary)
            raise StorageError(f"cannot write {relative}: {exc}") from exc

    def _forget(self, temporary: str) -> None:
        """Remove what a failed write left (a full disk must not stay full of it)."""
        with contextlib.suppress(OSError):
            self.fs.delete_file(temporary)

    def open_input(self, relative: str) -> pa.NativeFile:
        """A readable stream of a stored file (use as a context manager)."""
        try:
            return self.fs.open_input_stream(self.path(relative))
        except FileNotFoundError as exc:
            raise NotFound(f"no stored file {relative!r}") from exc

    def open_random(self, relative: str) -> pa.NativeFile:
        """A seekable reader of a stored file (use as a context manager)."""
        try:
            return self.fs.open_input_file(self.path(relative))
        except FileNotFoundError as exc:
            raise NotFound(f"no stored file {relative!r}") from exc

    def read_bytes(self, relative: str) -> bytes:
        """A whole file's content."""
        with self.open_input(relative) as stream:
            data: bytes = stream.read()
        return data

    def exists(self, relative: str) -> bool:
        """True if a file is stored at `relative`."""
        return bool(self.fs.get_file_info(self.path(relative)).type == pafs.FileType.File)

    def size(self, relative: str) -> int:
        """Size in bytes of a stored file."""
        size: int = self.fs.get_file_info(self.path(relative)).size
        return size

    def sha256(self, relative: str) -> str:
        """sha256 of a stored file, read in chunks."""
        digest = hashlib.sha256()
        with self.fs.open_input_stream(self.path(relative)) as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()

    def subdirectories(self, prefix: str) -> list[str]:
        """Names of the directories directly under `prefix`."""
        selector = pafs.FileSelector(self.path(prefix), allow_not_found=True)
        return sorted(
            posixpath.basename(info.path)
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.Directory
        )

    def delete_dir(self, relative: str) -> None:
        """Remove a directory and everything under it, if it exists."""
        if self.fs.get_file_info(self.path(relative)).type == pafs.FileType.Directory:
            self.fs.delete_dir(self.path(relative))

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

    def read_parquet(
        self, relative: str | Sequence[str], columns: Sequence[str] | None = None
    ) -> pa.Table:
        """Read one Parquet file, or several as one table, optionally only some columns."""
        paths = [self.path(r) for r in ([relative] if isinstance(relative, str) else relative)]
        return pq.read_table(paths, filesystem=self.fs, columns=list(columns) if columns else None)
