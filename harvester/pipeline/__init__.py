"""The text pipeline: extraction, quality, PII, signatures (crawl phase); dedup, splits and
leakage checks (build phase)."""
