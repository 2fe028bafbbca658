"""Blob storage: staging parts and dataset snapshots on pyarrow filesystems."""
