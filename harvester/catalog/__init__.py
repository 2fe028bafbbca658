"""The catalog: jobs, the persisted frontier with per-URL outcomes, and staging parts."""
