"""Writing a version's files without holding its rows: each split is shuffled by position,
rows are routed file by file into one bucket per shard on local disk, and each shard is
then sorted by position and written; the signature index is written in chunks."""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harvester.build.candidates import Candidates, batches
from harvester.pipeline.document import DOCUMENT_SCHEMA
from harvester.pipeline.splits import SPLITS
from harvester.spec import Shards
from harvester.store.blob import BlobStore
from harvester.store.manifest import FileEntry, SplitInfo
from harvester.store.snapshots import SIGNATURES

SNAPSHOT_SCHEMA = pa.schema(
    [
        *DOCUMENT_SCHEMA,
        ("cluster_id", pa.string()),
        ("cluster_size", pa.int32()),
        ("split", pa.string()),
    ]
)
INDEX_SCHEMA = pa.schema([("id", pa.string()), ("minhash", pa.list_(pa.uint32()))])
_INDEX_CHUNK = 65_536
_BUCKET_BATCH_BYTES = 16 * 2**20


@dataclass(frozen=True)
class Layout:
    """Where each kept document goes: its shard and its position in that shard."""

    names: list[str]
    """Shard paths, by shard number."""
    splits: list[str]
    shard: npt.NDArray[np.int32]
    """By candidate position (-1: not written)."""
    position: npt.NDArray[np.int64]
    info: dict[str, SplitInfo]


def layout(
    candidates: Candidates,
    kept: npt.NDArray[np.int64],
    split: npt.NDArray[np.object_],
    spec: Shards,
) -> Layout:
    """Shuffle each split (seeded; rows in id order first, so the outcome never depends on
    the order documents arrived in) and cut it into shards of at most `max_bytes`."""
    ids = candidates.meta.column("id").to_numpy(zero_copy_only=False)
    ordered = kept[np.argsort(ids[kept], kind="stable")]
    sizes = candidates.meta.column("size").to_numpy()
    rng = np.random.default_rng(spec.shuffle_seed)
    shard = np.full(len(candidates), -1, np.int32)
    position = np.zeros(len(candidates), np.int64)
    names: list[str] = []
    owners: list[str] = []
    info: dict[str, SplitInfo] = {}
    for name in SPLITS:
        rows = rng.permutation(ordered[split[ordered] == name])
        # An empty split gets no file: loaders (Hugging Face `datasets`) fail on empty shards.
        count = math.ceil(int(sizes[rows].sum()) / spec.max_bytes) if len(rows) else 0
        per_shard = math.ceil(len(rows) / count) if count else 0
        count = math.ceil(len(rows) / per_shard) if per_shard else 0  # no empty last shard
        for i in range(count):
            chunk = rows[i * per_shard : (i + 1) * per_shard]
            shard[chunk] = len(names)
            position[chunk] = np.arange(len(chunk))
            names.append(f"data/{name}-{i:05d}-of-{count:05d}.parquet")
            owners.append(name)
        info[name] = SplitInfo(rows=len(rows), shards=count)
    return Layout(names, owners, shard, position, info)


def write_shards(
    store: BlobStore,
    prefix: str,
    candidates: Candidates,
    plan: Layout,
    extra: dict[str, pa.Array],
    spec: Shards,
) -> list[FileEntry]:
    """Write every shard; `extra` holds the added columns (cluster_id, cluster_size, split)
    by candidate position."""
    sources = candidates.meta.column("source").to_numpy()
    rows = candidates.meta.column("row").to_numpy()
    sizes = candidates.meta.column("size").to_numpy()
    with tempfile.TemporaryDirectory(prefix="harvester-build-") as scratch:
        pieces = 0
        routed = SNAPSHOT_SCHEMA.append(pa.field("_position", pa.int64()))
        for source, path in enumerate(candidates.files):
            mine = np.flatnonzero((sources == source) & (plan.shard >= 0))
            if len(mine) == 0:
                continue
            mine = mine[np.argsort(rows[mine], kind="stable")]
            start = 0
            for batch in batches(store, path, DOCUMENT_SCHEMA.names):
                end = start + batch.num_rows
                lo, hi = np.searchsorted(rows[mine], [start, end])
                at = mine[lo:hi]
                if len(at):
                    table = pa.Table.from_batches([batch]).take(pa.array(rows[at] - start))
                    for name, values in extra.items():
                        table = table.append_column(name, values.take(pa.array(at)))
                    table = table.append_column("_position", pa.array(plan.position[at]))
                    table = table.cast(routed)
                    # One file per piece: an open writer per shard would keep its
                    # encoders' buffers (tens of MB each) for the whole pass.
                    for number in np.unique(plan.shard[at]).tolist():
                        bucket = Path(scratch) / str(number)
                        bucket.mkdir(exist_ok=True)
                        piece = table.filter(pa.array(plan.shard[at] == number))
                        pq.write_table(piece, bucket / f"{pieces:08d}.parquet", compression="none")
                        pieces += 1
                start = end
        entries = []
        for number, name in enumerate(plan.names):
            members = plan.shard == number
            bucket = Path(scratch) / str(number)
            final = Path(scratch) / "shard.parquet"
            _sort_bucket(bucket, final, int(members.sum()), int(sizes[members].sum()), spec)
            shutil.rmtree(bucket)
            store.upload(final, f"{prefix}/{name}")
            entries.append(_entry(store, prefix, name, plan.splits[number], int(members.sum())))
        return entries


def _sort_bucket(bucket: Path, final: Path, rows: int, size: int, spec: Shards) -> None:
    """Write a shard's rows in position order, holding about one row group of them at a time:
    one pass over the bucket per range of positions."""
    avg_row = max(1, size // max(1, rows))
    row_group = max(1, spec.row_group_bytes // avg_row)
    batch_rows = max(1, _BUCKET_BATCH_BYTES // avg_row)
    pieces = sorted(bucket.iterdir()) if bucket.exists() else []
    with pq.ParquetWriter(final, SNAPSHOT_SCHEMA, compression="zstd") as writer:
        for low in range(0, rows, row_group):
            high = low + row_group
            parts = []
            for batch in (
                batch
                for piece in pieces
                for batch in pq.ParquetFile(piece).iter_batches(batch_size=batch_rows)
            ):
                position = batch.column("_position")
                inside = pc.and_(pc.greater_equal(position, low), pc.less(position, high))
                parts.append(pa.Table.from_batches([batch]).filter(inside))
            chunk = pa.concat_tables(parts).sort_by("_position").drop_columns(["_position"])
            writer.write_table(chunk.cast(SNAPSHOT_SCHEMA), row_group_size=row_group)


def write_index(
    store: BlobStore,
    prefix: str,
    ids: pa.Array,
    sigs: npt.NDArray[np.uint32],
) -> FileEntry:
    """The signature index (id, minhash), in id order, written chunk by chunk."""
    order = np.argsort(ids.to_numpy(zero_copy_only=False), kind="stable")
    with tempfile.TemporaryDirectory(prefix="harvester-index-") as scratch:
        local = Path(scratch) / "index.parquet"
        with pq.ParquetWriter(local, INDEX_SCHEMA, compression="zstd") as writer:
            for start in range(0, len(order), _INDEX_CHUNK):
                part = order[start : start + _INDEX_CHUNK]
                block = sigs[part]
                minhash = pa.FixedSizeListArray.from_arrays(
                    pa.array(block.reshape(-1)), block.shape[1]
                ).cast(pa.list_(pa.uint32()))
                writer.write_table(
                    pa.table({"id": ids.take(pa.array(part)), "minhash": minhash}, INDEX_SCHEMA)
                )
        store.upload(local, f"{prefix}/{SIGNATURES}")
    return _entry(store, prefix, SIGNATURES, None, len(order))


def _entry(store: BlobStore, prefix: str, path: str, split: str | None, rows: int) -> FileEntry:
    full = f"{prefix}/{path}"
    return FileEntry(
        path=path, split=split, rows=rows, bytes=store.size(full), sha256=store.sha256(full)
    )
