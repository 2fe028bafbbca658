"""Harvester: polite async crawling, a text pipeline and versioned dataset snapshots."""

__version__ = "0.1.0"
