"""Step one: every document that may enter the version (staged now, or carried over from the
parent), as metadata and signatures only, each with the file and row its text is in."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harvester.build.inputs import BuildInput
from harvester.build.spill import Matrix
from harvester.crawl.scope import ScopeRules
from harvester.pipeline.minhash import signatures
from harvester.store.blob import BlobStore
from harvester.store.layout import SIGNATURES, version_prefix
from harvester.store.manifest import Manifest

ROW_OVERHEAD = 512
"""Bytes a row takes beyond its text and markdown (the other columns), for shard sizing."""
_BATCH = 8192
_BATCH_BYTES = 16 * 2**20


@dataclass
class Candidates:
    """One entry per candidate document; arrays aligned by position."""

    files: list[str]
    """Blob paths the documents' rows are read from."""
    meta: pa.Table
    """id, url, domain, content_sha256, fetched_at (µs), prior (the split the parent
    published the id in, or null), from_parent, source (index into `files`), row (in its
    file), length (characters of text), size (approximate bytes in a shard)."""
    sigs: Matrix
    """Each candidate's MinHash signature, on local disk."""
    parent: pa.Table
    """id and content_sha256 of every document of the parent version."""

    def __len__(self) -> int:
        return int(self.meta.num_rows)

    def column(self, name: str) -> npt.NDArray[Any]:
        """A column as a numpy array (strings as objects)."""
        values: npt.NDArray[Any] = self.meta.column(name).to_numpy(zero_copy_only=False)
        return values


def batches(store: BlobStore, path: str, columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
    """A stored Parquet file's `columns`, batch by batch: never the whole file, and at most
    about `_BATCH_BYTES` of rows at once, however long its texts."""
    with store.open_random(path) as handle:
        file = pq.ParquetFile(handle)
        meta = file.metadata
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        rows = max(1, min(_BATCH, _BATCH_BYTES * meta.num_rows // max(1, size)))
        yield from file.iter_batches(batch_size=rows, columns=list(columns))


def taken(
    store: BlobStore, path: str, wanted: npt.NDArray[np.int64], columns: Sequence[str]
) -> Iterator[tuple[slice, pa.RecordBatch]]:
    """`columns` of the `wanted` rows (ascending) of one file, batch by batch: each slice of
    `wanted` with its rows."""
    start = 0
    for batch in batches(store, path, columns):
        end = start + batch.num_rows
        lo, hi = np.searchsorted(wanted, [start, end])
        if hi > lo:
            yield slice(int(lo), int(hi)), batch.take(pa.array(wanted[lo:hi] - start))
        start = end


def _scan(store: BlobStore, paths: list[str], columns: list[str], first: int) -> pa.Table:
    """`columns` of every row of `paths` with source, row, length and size; texts dropped."""
    tables: list[pa.Table] = []
    for number, path in enumerate(paths):
        start = 0
        for batch in batches(store, path, [*columns, "text", "markdown"]):
            text, n = batch.column("text"), batch.num_rows
            text_bytes = pc.fill_null(pc.binary_length(text), 0)
            markdown_bytes = pc.fill_null(pc.binary_length(batch.column("markdown")), 0)
            size = pc.add(pc.add(text_bytes, markdown_bytes), ROW_OVERHEAD).cast(pa.int64())
            extra = {
                "source": pa.array(np.full(n, first + number, np.int32)),
                "row": pa.array(np.arange(start, start + n, dtype=np.int64)),
                "length": pc.fill_null(pc.utf8_length(text), 0).cast(pa.int64()),
                "size": size,
            }
            table = pa.Table.from_batches([batch]).select(columns)
            for name, values in extra.items():
                table = table.append_column(name, values)
            tables.append(table)
            start += n
    return pa.concat_tables(tables)


def _matrix(column: pa.Array, num_perm: int) -> npt.NDArray[np.uint32]:
    flat = column.flatten() if len(column) else pa.array([], pa.uint32())
    return np.asarray(flat, dtype=np.uint32).reshape(-1, num_perm)


def _fill(
    store: BlobStore,
    files: list[str],
    located: pa.Table,
    column: str,
    num_perm: int,
    out: Matrix,
    first: int,
) -> None:
    """Copy the signatures (`column`) of the rows `located` names (by source and row) into
    `out` from position `first` on, in `located`'s order, reading one batch of one file at a
    time."""
    sources = located.column("source").to_numpy()
    rows = located.column("row").to_numpy()
    for source in np.unique(sources):
        at = np.flatnonzero(sources == source)
        at = at[np.argsort(rows[at], kind="stable")]
        # Only the wanted rows: a dropped page's row has no signature at all.
        for part, batch in taken(store, files[source], rows[at], [column]):
            out.write(first + at[part], _matrix(batch.column(column), num_perm))


def _latest_per_url(table: pa.Table) -> pa.Table:
    """One row per URL, the most recently fetched, when several jobs staged the same page."""
    if table.num_rows == 0:
        return table
    codes = pc.dictionary_encode(table.column("url")).combine_chunks().indices.to_numpy()
    fetched = table.column("fetched_at").cast(pa.int64()).to_numpy()
    order = np.lexsort((fetched, codes))
    last = np.concatenate([codes[order][1:] != codes[order][:-1], [True]])
    return table.take(pa.array(np.sort(order[last])))


_STAGED = ["url", "dropped", "id", "domain", "content_sha256", "fetched_at"]
_PARENT = ["id", "url", "domain", "content_sha256", "fetched_at", "split"]
_META = ["id", "url", "domain", "content_sha256", "fetched_at", "source", "row", "length", "size"]


def gather(store: BlobStore, job: BuildInput, parent: Manifest | None, scratch: Path) -> Candidates:
    """The candidates: the staged documents (the latest per URL) and the parent's documents
    the job did not refetch, did not find gone, and whose URLs its scope still takes in.
    Signatures are read last, straight into one matrix in `scratch`."""
    num_perm = job.spec.pipeline.dedup.num_perm
    files = list(job.staging)
    empty = pa.schema([(name, t) for name, t in zip(_META, _TYPES, strict=True)]).empty_table()
    staged = empty
    refetched = pa.array([], pa.string())
    if files:
        scanned = _scan(store, files, _STAGED, 0)
        refetched = scanned.column("url").combine_chunks()
        staged = _latest_per_url(scanned.filter(pc.is_null(scanned.column("dropped"))))
    carried = empty
    previous = pa.table({"id": pa.array([], pa.string()), "split": pa.array([], pa.string())})
    hashes = pa.table(
        {"id": pa.array([], pa.string()), "content_sha256": pa.array([], pa.string())}
    )
    if parent is not None:
        prefix = version_prefix(parent.dataset, parent.version)
        shards = [f"{prefix}/{entry.path}" for entry in parent.files if entry.split]
        old = _scan(store, shards, _PARENT, len(files))
        files += shards
        previous, hashes = old.select(["id", "split"]), old.select(["id", "content_sha256"])
        urls = old.column("url")
        scope = ScopeRules(job.spec.scope, [str(s) for s in job.spec.seeds])
        in_scope = [scope.rejection(u, 0) is None for u in urls.to_pylist()]
        gone = pa.array(sorted(job.gone), pa.string())
        leaving = pc.or_(pc.is_in(urls, value_set=refetched), pc.is_in(urls, value_set=gone))
        carried = old.filter(pc.and_(pc.invert(leaving), pa.array(in_scope, pa.bool_())))
        carried = carried.select(_META)
    matrix = Matrix(scratch / "signatures", staged.num_rows + carried.num_rows, num_perm)
    _fill(store, files, staged, "minhash", num_perm, matrix, 0)
    if parent is not None:
        _parent_signatures(store, parent, carried, files, job, matrix, staged.num_rows)
    meta = pa.concat_tables(
        [
            _marked(staged.select(_META), from_parent=False),
            _marked(carried.cast(empty.schema), from_parent=True),
        ]
    )
    at = pc.index_in(meta.column("id"), value_set=previous.column("id").combine_chunks())
    meta = meta.append_column("prior", pc.take(previous.column("split"), at))
    return Candidates(files, meta.combine_chunks(), matrix, hashes.combine_chunks())


_TYPES = [
    pa.string(), pa.string(), pa.string(), pa.string(), pa.timestamp("us", tz="UTC"),
    pa.int32(), pa.int64(), pa.int64(), pa.int64(),
]  # fmt: skip


def _marked(table: pa.Table, *, from_parent: bool) -> pa.Table:
    return table.append_column(
        "from_parent", pa.array(np.full(table.num_rows, from_parent), pa.bool_())
    )


def _parent_signatures(
    store: BlobStore,
    parent: Manifest,
    carried: pa.Table,
    files: list[str],
    job: BuildInput,
    out: Matrix,
    first: int,
) -> None:
    """Fill `out` from position `first` on with the carried documents' signatures: from the
    parent's index, read batch by batch, or recomputed from their texts if the spec changed
    the family."""
    dedup = job.spec.pipeline.dedup
    if (parent.dedup.num_perm, parent.dedup.ngram) == (dedup.num_perm, dedup.ngram):
        ids = carried.column("id").combine_chunks()
        index = f"{version_prefix(parent.dataset, parent.version)}/{SIGNATURES}"
        for batch in batches(store, index, ["id", "minhash"]):
            at = pc.fill_null(pc.index_in(batch.column("id"), value_set=ids), -1).to_numpy()
            found = at >= 0
            rows = _matrix(batch.column("minhash"), dedup.num_perm)
            out.write(first + at[found], rows[found])
        return
    sources = carried.column("source").to_numpy()
    rows = carried.column("row").to_numpy()
    for source in np.unique(sources):
        at = np.flatnonzero(sources == source)
        at = at[np.argsort(rows[at], kind="stable")]
        for part, batch in taken(store, files[source], rows[at], ["text"]):
            texts = batch.column("text").to_pylist()
            out.write(first + at[part], signatures(texts, dedup.num_perm, dedup.ngram))


@dataclass(frozen=True)
class FileRows:
    """Some rows of one input file, ascending, and the candidate positions they hold: what a
    per-file step reads."""

    source: int
    path: str
    rows: npt.NDArray[np.int64]
    positions: npt.NDArray[np.int64]


def by_file(candidates: Candidates, positions: npt.NDArray[np.int64]) -> list[FileRows]:
    """The given candidates grouped by the file that holds them, in file order."""
    sources = candidates.meta.column("source").to_numpy()[positions]
    rows = candidates.meta.column("row").to_numpy()[positions]
    out = []
    for source in np.unique(sources).tolist():
        at = np.flatnonzero(sources == source)
        order = at[np.argsort(rows[at], kind="stable")]
        out.append(FileRows(source, candidates.files[source], rows[order], positions[order]))
    return out


def file_texts(store: BlobStore, part: FileRows) -> Iterator[tuple[int, str]]:
    """(position, text) of one file's rows, batch by batch."""
    for piece, batch in taken(store, part.path, part.rows, ["text"]):
        column = batch.column("text").to_pylist()
        yield from zip(part.positions[piece].tolist(), column, strict=True)
