"""A blob store rooted at a local directory or an S3 prefix, through pyarrow filesystems.

It is the one boundary where storage errors are translated: pyarrow raises OSError for a
full disk as for an S3 503 or timeout; what leaves here is `NotFound` or `StorageError`
naming the file and the action.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from harvester.config import Settings
from harvester.errors import AlreadyExists, ConfigurationError, NotFound, StorageError

S3_CONNECT_TIMEOUT_S = 5.0
S3_ATTEMPTS = 3


@contextlib.contextmanager
def _storage(action: str, relative: str) -> Iterator[None]:
    try:
        yield
    except FileNotFoundError as exc:
        raise NotFound(f"no stored file {relative!r}") from exc
    except OSError as exc:
        raise StorageError(f"cannot {action} {relative}: {exc}") from exc


class BlobStore:
    """Paths are relative, '/'-separated and may not climb out of the root."""

    def __init__(
        self, fs: pafs.FileSystem, root: str, s3: tuple[str | None, float] | None = None
    ) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self._s3 = s3
        """On S3: the endpoint and request timeout, for the one call pyarrow lacks."""

    @classmethod
    def from_settings(cls, settings: Settings) -> BlobStore:
        """The store a process's settings name."""
        return cls.from_url(settings.storage_url, settings.s3_endpoint, settings.s3_timeout_s)

    @classmethod
    def from_url(
        cls, url: str, s3_endpoint: str | None = None, s3_timeout_s: float = 30.0
    ) -> BlobStore:
        """`file:///abs/path`, `s3://bucket/prefix` or a plain local path."""
        if url.startswith("s3://"):
            bucket_prefix = url.removeprefix("s3://").strip("/")
            # A stalled object store must fail a call, not hang it: callers retry later.
            fs = pafs.S3FileSystem(
                endpoint_override=s3_endpoint,
                connect_timeout=S3_CONNECT_TIMEOUT_S,
                request_timeout=s3_timeout_s,
                retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=S3_ATTEMPTS),
            )
            return cls(fs, bucket_prefix, (s3_endpoint, s3_timeout_s))
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
        with _storage("write", relative), self._forgetting(temporary):
            self.fs.create_dir(posixpath.dirname(final), recursive=True)
            pq.write_table(
                table,
                temporary,
                filesystem=self.fs,
                compression="zstd",
                row_group_size=row_group_size,
            )
            self.fs.move(temporary, final)
        return self.size(relative)

    def write_bytes(self, relative: str, data: bytes) -> None:
        """Write a small file atomically (temporary name, then rename)."""
        final = self.path(relative)
        temporary = f"{final}.tmp-{uuid.uuid4().hex}"
        with _storage("write", relative), self._forgetting(temporary):
            self.fs.create_dir(posixpath.dirname(final), recursive=True)
            with self.fs.open_output_stream(temporary) as out:
                out.write(data)
            self.fs.move(temporary, final)

    def create_bytes(self, relative: str, data: bytes) -> None:
        """Write a small file only if none is stored there, atomically: the commit of a
        version (its manifest). Raises `AlreadyExists` if one is. S3 has no rename that
        refuses to overwrite, so there it is a conditional put (`If-None-Match: *`)."""
        final = self.path(relative)
        if self._s3 is not None:
            self._s3_create(relative, final, data)
            return
        temporary = f"{final}.tmp-{uuid.uuid4().hex}"
        with _storage("write", relative), self._forgetting(temporary):
            self.fs.create_dir(posixpath.dirname(final), recursive=True)
            with self.fs.open_output_stream(temporary) as out:
                out.write(data)
            try:  # a hard link is created only where no file is: the local conditional put
                os.link(temporary, final)
            except FileExistsError as exc:
                raise AlreadyExists(f"{relative} is already stored") from exc
            finally:
                self.fs.delete_file(temporary)

    def _s3_create(self, relative: str, final: str, data: bytes) -> None:
        import boto3  # only an S3 deployment needs it
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        assert self._s3 is not None
        endpoint, timeout = self._s3
        config = Config(
            connect_timeout=S3_CONNECT_TIMEOUT_S,
            read_timeout=timeout,
            retries={"max_attempts": S3_ATTEMPTS, "mode": "standard"},
        )
        client = boto3.client("s3", endpoint_url=endpoint, config=config)
        bucket, key = final.split("/", 1)
        try:
            client.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                raise AlreadyExists(f"{relative} is already stored") from exc
            raise StorageError(f"cannot write {relative}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot write {relative}: {exc}") from exc

    def upload(self, local: Path, relative: str) -> None:
        """Copy a local file in atomically (temporary name, then rename)."""
        final = self.path(relative)
        temporary = f"{final}.tmp-{uuid.uuid4().hex}"
        with _storage("write", relative), self._forgetting(temporary):
            self.fs.create_dir(posixpath.dirname(final), recursive=True)
            with local.open("rb") as source, self.fs.open_output_stream(temporary) as out:
                while chunk := source.read(1 << 22):
                    out.write(chunk)
            self.fs.move(temporary, final)

    @contextlib.contextmanager
    def _forgetting(self, temporary: str) -> Iterator[None]:
        """Remove what a failed write left (a full disk must not stay full of it)."""
        try:
            yield
        except OSError:
            with contextlib.suppress(OSError):
                self.fs.delete_file(temporary)
            raise

    def open_input(self, relative: str) -> pa.NativeFile:
        """A readable stream of a stored file (use as a context manager)."""
        with _storage("read", relative):
            return self.fs.open_input_stream(self.path(relative))

    def open_random(self, relative: str) -> pa.NativeFile:
        """A seekable reader of a stored file (use as a context manager)."""
        with _storage("read", relative):
            return self.fs.open_input_file(self.path(relative))

    def read_bytes(self, relative: str) -> bytes:
        """A whole file's content."""
        with _storage("read", relative), self.open_input(relative) as stream:
            data: bytes = stream.read()
        return data

    def exists(self, relative: str) -> bool:
        """True if a file is stored at `relative`."""
        with _storage("look up", relative):
            return bool(self.fs.get_file_info(self.path(relative)).type == pafs.FileType.File)

    def size(self, relative: str) -> int:
        """Size in bytes of a stored file."""
        with _storage("look up", relative):
            size: int = self.fs.get_file_info(self.path(relative)).size
        return size

    def sha256(self, relative: str) -> str:
        """sha256 of a stored file, read in chunks."""
        digest = hashlib.sha256()
        with _storage("read", relative), self.fs.open_input_stream(self.path(relative)) as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()

    def subdirectories(self, prefix: str) -> list[str]:
        """Names of the directories directly under `prefix`."""
        selector = pafs.FileSelector(self.path(prefix), allow_not_found=True)
        with _storage("list", prefix):
            infos = self.fs.get_file_info(selector)
        return sorted(
            posixpath.basename(info.path) for info in infos if info.type == pafs.FileType.Directory
        )

    def delete_dir(self, relative: str) -> None:
        """Remove a directory and everything under it, if it exists."""
        with _storage("delete", relative):
            if self.fs.get_file_info(self.path(relative)).type == pafs.FileType.Directory:
                self.fs.delete_dir(self.path(relative))

    def list(self, prefix: str) -> list[str]:
        """Relative paths of the files under `prefix`."""
        selector = pafs.FileSelector(self.path(prefix), allow_not_found=True, recursive=True)
        start = len(self.root) + 1
        with _storage("list", prefix):
            infos = self.fs.get_file_info(selector)
        return sorted(info.path[start:] for info in infos if info.type == pafs.FileType.File)

    def delete(self, relative: str) -> None:
        """Remove a file if it exists."""
        with contextlib.suppress(NotFound), _storage("delete", relative):
            self.fs.delete_file(self.path(relative))

    def read_parquet(
        self, relative: str | Sequence[str], columns: Sequence[str] | None = None
    ) -> pa.Table:
        """Read one Parquet file, or several as one table, optionally only some columns."""
        relatives = [relative] if isinstance(relative, str) else list(relative)
        paths = [self.path(r) for r in relatives]
        with _storage("read", ", ".join(relatives[:3]) + (" …" if len(relatives) > 3 else "")):
            return pq.read_table(
                paths, filesystem=self.fs, columns=list(columns) if columns else None
            )
