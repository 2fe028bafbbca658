"""The REST API (FastAPI): thin routes over the engine. Build it with `create_app`
(`harvester.api.app`); importing this package alone loads nothing else, so the client and the
CLI can use its schemas without FastAPI's start-up cost."""
