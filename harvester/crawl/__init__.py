"""The crawl phase: frontier, politeness, fetching, proxies, retries and staging output."""
