"""A real S3-compatible server on loopback (moto in server mode) for the blob store on S3."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow.fs as pafs

# Credentials moto accepts, and no instance-metadata lookup (it would leave loopback).
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


class S3Server:
    """`moto_server` on `host`, port chosen; `bucket()` makes a fresh bucket."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self.endpoint = f"http://{host}:{port}"
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("moto_server")), "-H", host, "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def bucket(self) -> str:
        name = f"b-{uuid.uuid4().hex[:12]}"
        fs = pafs.S3FileSystem(endpoint_override=self.endpoint, allow_bucket_creation=True)
        fs.create_dir(name)
        return name

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
