"""Writing a version's files without holding its rows: each split is shuffled by position,
rows are routed file by file into one bucket per shard (pieces in the store, so that steps
on other machines can write and read them), and each shard is then sorted by position and
written; the signature index is written in chunks."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harvester.build.candidates import Candidates, FileRows, batches, by_file, taken
from harvester.build.executor import Executor
from harvester.build.spill import Matrix
from harvester.pipeline.document import DOCUMENT_SCHEMA
from harvester.pipeline.splits import SPLITS
from harvester.spec import Shards
from harvester.store.blob import BlobStore
from harvester.store.layout import SIGNATURES
from harvester.store.manifest import FileEntry, SplitInfo

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
_BUCKETS = "_buckets"
"""Under the version's directory while its shards are written; gone before the commit."""
_ROUTED = SNAPSHOT_SCHEMA.append(pa.field("_position", pa.int64()))


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
    executor: Executor,
) -> list[FileEntry]:
    """Write every shard; `extra` holds the added columns (cluster_id, cluster_size, split)
    by candidate position. Two rounds of steps: each input file's rows are routed into
    pieces of their shard's bucket (in the store, under the version), then each shard is
    sorted from its bucket and uploaded."""
    buckets = f"{prefix}/{_BUCKETS}"
    routes = []
    for part in by_file(candidates, np.flatnonzero(plan.shard >= 0)):
        at = pa.array(part.positions)
        columns = {name: values.take(at) for name, values in extra.items()}
        columns["_position"] = pa.array(plan.position[part.positions])
        columns["_shard"] = pa.array(plan.shard[part.positions])
        routes.append((store, part, pa.table(columns), buckets))
    list(executor.map(_route, routes))
    sizes = candidates.meta.column("size").to_numpy()
    finishing = []
    for number, name in enumerate(plan.names):
        members = plan.shard == number
        shard = _Shard(name, plan.splits[number], int(members.sum()), int(sizes[members].sum()))
        finishing.append((store, prefix, f"{buckets}/{number}", shard, spec))
    entries = list(executor.map(_finish, finishing))
    store.delete_dir(buckets)
    return entries


@dataclass(frozen=True)
class _Shard:
    name: str
    split: str
    rows: int
    size: int


def _route(task: tuple[BlobStore, FileRows, pa.Table, str]) -> None:
    """One input file's step: its rows, with their added columns, as one piece per shard
    and batch. Piece names are fixed by file and batch, so a rerun overwrites its own."""
    store, part, columns, buckets = task
    for number, (piece, batch) in enumerate(
        taken(store, part.path, part.rows, DOCUMENT_SCHEMA.names)
    ):
        table = pa.Table.from_batches([batch])
        for name in columns.column_names:
            table = table.append_column(name, columns.column(name)[piece])
        shard = table.column("_shard").to_numpy()
        table = table.drop_columns(["_shard"]).cast(_ROUTED)
        for target in np.unique(shard).tolist():
            piece_path = f"{buckets}/{target}/{part.source:06d}-{number:06d}.parquet"
            store.write_parquet(piece_path, table.filter(pa.array(shard == target)))


def _finish(task: tuple[BlobStore, str, str, _Shard, Shards]) -> FileEntry:
    """One shard's step: its rows in position order, holding about one row group of them at
    a time (one pass over the bucket per range of positions), uploaded."""
    store, prefix, bucket, shard, spec = task
    avg_row = max(1, shard.size // max(1, shard.rows))
    row_group = max(1, spec.row_group_bytes // avg_row)
    pieces = store.list(bucket)
    with tempfile.TemporaryDirectory(prefix="harvester-shard-") as scratch:
        final = Path(scratch) / "shard.parquet"
        with pq.ParquetWriter(final, SNAPSHOT_SCHEMA, compression="zstd") as writer:
            for low in range(0, shard.rows, row_group):
                high = low + row_group
                parts = []
                for piece in pieces:
                    for batch in batches(store, piece, _ROUTED.names):
                        position = batch.column("_position")
                        inside = pc.and_(pc.greater_equal(position, low), pc.less(position, high))
                        parts.append(pa.Table.from_batches([batch]).filter(inside))
                chunk = pa.concat_tables(parts).sort_by("_position").drop_columns(["_position"])
                writer.write_table(chunk.cast(SNAPSHOT_SCHEMA), row_group_size=row_group)
        store.upload(final, f"{prefix}/{shard.name}")
    return _entry(store, prefix, shard.name, shard.split, shard.rows)


def write_index(
    store: BlobStore,
    prefix: str,
    ids: pa.ChunkedArray,
    sigs: Matrix,
    kept: npt.NDArray[np.int64],
) -> FileEntry:
    """The signature index (id, minhash) of the `kept` candidates, in id order, written
    chunk by chunk."""
    ids = ids.take(pa.array(kept))
    order = np.argsort(ids.to_numpy(zero_copy_only=False), kind="stable")
    with tempfile.TemporaryDirectory(prefix="harvester-index-") as scratch:
        local = Path(scratch) / "index.parquet"
        with pq.ParquetWriter(local, INDEX_SCHEMA, compression="zstd") as writer:
            for start in range(0, len(order), _INDEX_CHUNK):
                part = order[start : start + _INDEX_CHUNK]
                block = sigs.take(kept[part])
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
