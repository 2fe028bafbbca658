"""The dataset card (`README.md`): a YAML header Hugging Face `datasets` reads, then prose."""

from __future__ import annotations

import yaml

from harvester.store.manifest import Manifest


def render_card(manifest: Manifest) -> str:
    """The card of a snapshot, from its manifest."""
    spec = manifest.spec
    header = {
        "pretty_name": f"{manifest.dataset} v{manifest.version}",
        "language": spec["pipeline"]["quality"]["languages"] or None,
        "configs": [
            {
                "config_name": "default",
                "data_files": [
                    {"split": split, "path": f"data/{split}-*.parquet"}
                    for split, info in manifest.splits.items()
                    if info.rows
                ],
            }
        ],
    }
    header = {k: v for k, v in header.items() if v is not None}
    domains = sorted({str(s).split("/")[2] for s in spec["seeds"]})
    quality = spec["pipeline"]["quality"]
    pii = spec["pipeline"]["pii"]
    dedup = manifest.dedup
    split_lines = "\n".join(
        f"| {name} | {info.rows} | {info.shards} |" for name, info in manifest.splits.items()
    )
    changes = manifest.changes
    leak = manifest.leakage
    pii_found = ", ".join(
        f"{k.split('/', 1)[1]} {v}" for k, v in manifest.stats.items() if k.startswith("pii/")
    )
    drops = ", ".join(
        f"{k.rsplit('/', 1)[1]} {v}"
        for k, v in manifest.stats.items()
        if k.startswith("quality/dropped/")
    )
    return f"""---
{yaml.safe_dump(header, sort_keys=False).strip()}
---

# {manifest.dataset} (version {manifest.version})

Web text collected by Harvester from {", ".join(domains)} and built on
{manifest.created_at:%Y-%m-%d %H:%M} UTC from job(s) {", ".join(manifest.jobs)}.
Parent version: {manifest.parent_version or "none"}.

## Splits

| split | rows | shards |
| --- | --- | --- |
{split_lines}

Assignment is by a salted hash of the document's {spec["splits"]["group_by"]} and is stable:
a document keeps its split in every later version, and a new near duplicate of an existing
document joins that document's split. Rows are shuffled with seed {manifest.shuffle_seed}.

## How it was made

- **Extraction**: trafilatura (main text and metadata), selectolax as the fallback.
- **Quality**: at least {quality["min_words"]} words, languages {quality["languages"] or "any"},
  Gopher/C4 repetition, symbol and punctuation rules. Dropped: {drops or "none"}.
- **PII**: policy {", ".join(f"{k}={v}" for k, v in pii.items() if k != "phone_region")};
  masked values read `<EMAIL>`, `<PHONE>`, `<IP>`, `<CARD>`, `<IBAN>`, `<SSN>`;
  found: {pii_found or "none"}.
- **Dedup**: exact (normalised text) and MinHash (num_perm {dedup.num_perm},
  {dedup.ngram}-word shingles, Jaccard >= {dedup.threshold}, {dedup.bands} bands x
  {dedup.rows_per_band} rows); {dedup.exact_duplicates} exact and {dedup.near_duplicates} near
  duplicates {"removed" if dedup.action == "remove" else "marked"}.
- **Leakage**: {leak.cross_split_near_duplicates} near duplicates, {leak.cross_split_exact} exact
  duplicates and {leak.cross_split_urls} URLs across splits; {leak.test_13gram_in_train:.2%} of
  test and {leak.validation_13gram_in_train or 0:.2%} of validation 13-grams occur in train
  ({leak.related_pairs} pairs of related documents kept in one split).
- **Changes since the parent**: {changes.added} added, {changes.removed} removed,
  {changes.changed} changed, {changes.unchanged} unchanged, {changes.moved} moved to the
  split of a document they became a near duplicate of.

## Loading

```python
from datasets import load_dataset
ds = load_dataset("parquet", data_dir="data")          # or load_dataset(<this directory>)
```

`manifest.json` lists every file with its sha256, rows and bytes.
"""
