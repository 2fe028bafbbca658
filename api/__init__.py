"""The REST API (FastAPI): thin routes over the `harvester` engine. Build it with `create_app`."""

from api.app import create_app

__all__ = ["create_app"]
