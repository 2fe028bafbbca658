"""The deployment built and run for real: the images of deploy/ (on a Debian base imported
from debootstrap, as no image registry is reachable here, with Python packages from a
wheelhouse made on this machine) and the stack of docker-compose.yml with the stand-ins of
deploy/compose.test.yml."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DEBIAN = "harvester-test/debian"
PYTHON = "harvester-test/python"
POSTGRES = "harvester-test/postgres"
MOTO = "harvester-test/moto"
HARVESTER = "harvester-test/harvester"
MIRROR = "http://deb.debian.org/debian"
API = "http://127.0.0.1:18000"
API_KEY = "hv_compose-test-key"


def unavailable() -> str | None:
    """Why the compose test cannot run here, or None."""
    for tool in ("docker", "docker-compose", "debootstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: docker.io, docker-compose, debootstrap)"
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "the Docker engine is not running (start dockerd)"
    return None


def _run(*command: str | Path, cwd: Path | None = None) -> None:
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed:\n{done.stdout}\n{done.stderr}")


def _exists(image: str) -> bool:
    found = subprocess.run(["docker", "image", "inspect", image], capture_output=True)
    return found.returncode == 0


def _build(image: str, dockerfile: Path, context: Path, **args: str) -> None:
    flags = [f"--build-arg={k}={v}" for k, v in args.items()]
    _run("docker", "build", "--network=host", "-q", "-t", image, "-f", dockerfile, *flags, context)


def _source(target: Path) -> None:
    """What the image's build context holds (as .dockerignore lets through)."""
    ignore = shutil.ignore_patterns("__pycache__", "wheels")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, target / name)
    for name in ("harvester", "deploy"):
        shutil.copytree(ROOT / name, target / name, ignore=ignore)


def _wheels(target: Path, *requirements: str | Path) -> None:
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(target)]
    _run(*pip, "--constraint", DEPLOY / "constraints.txt", *requirements)


def build_images(work: Path) -> dict[str, float]:
    """Every image the test stack runs; the seconds each step took."""
    took: dict[str, float] = {}

    def step(name: str) -> None:
        took[name] = time.monotonic() - sum(took.values()) - started

    started = time.monotonic()
    if not _exists(DEBIAN):  # the base is kept between runs on one machine: it never changes
        rootfs = work / "rootfs"
        _run("debootstrap", "--variant=minbase", "bookworm", rootfs, MIRROR)
        with subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE) as tar:
            imported = subprocess.run(["docker", "import", "-", DEBIAN], stdin=tar.stdout)
        if tar.returncode or imported.returncode:
            raise RuntimeError(f"importing the Debian base failed (tar {tar.returncode})")
        shutil.rmtree(rootfs)
    step("debian base")
    _build(PYTHON, DEPLOY / "test/python.Dockerfile", DEPLOY / "test", DEBIAN=DEBIAN)
    _build(POSTGRES, DEPLOY / "test/postgres.Dockerfile", DEPLOY / "test", DEBIAN=DEBIAN)
    step("python and postgres images")
    context = work / "context"
    context.mkdir()
    _source(context)
    _wheels(context / "deploy" / "wheels", context, "setuptools>=68")
    shutil.rmtree(context / "build", ignore_errors=True)
    step("wheelhouse")
    _build(HARVESTER, context / "deploy/Dockerfile", context, BASE=PYTHON)
    step("harvester image")
    moto = work / "moto"
    _wheels(moto / "wheels", f"moto[server]=={version('moto')}")
    shutil.copy(DEPLOY / "test/moto.Dockerfile", moto / "Dockerfile")
    _build(MOTO, moto / "Dockerfile", moto, PYTHON=PYTHON)
    step("moto image")
    return took


class Stack:
    """docker-compose.yml + deploy/compose.test.yml as one project."""

    def __init__(self, work: Path) -> None:
        self.project = "harvestertest"
        empty = work / "empty.env"  # never a developer's .env
        empty.write_text("")
        self.env = {
            **os.environ,
            "POSTGRES_PASSWORD": "unused-with-trust-auth",
            "S3_ACCESS_KEY": "testing",
            "S3_SECRET_KEY": "testing",
            "HARVESTER_API_KEY": API_KEY,
        }
        self.base = [
            "docker-compose", "--env-file", str(empty), "-p", self.project,
            "-f", str(ROOT / "docker-compose.yml"), "-f", str(DEPLOY / "compose.test.yml"),
        ]  # fmt: skip

    def compose(self, *args: str) -> str:
        """Run a docker-compose command on the stack; its output."""
        done = subprocess.run([*self.base, *args], env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"docker-compose {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    def containers(self, service: str) -> list[str]:
        """Ids of the service's containers."""
        return self.compose("ps", "-q", service).split()

    def logs(self) -> str:
        """The last lines each container printed, for a failure's message."""
        done = subprocess.run([*self.base, "logs", "--tail=40"], env=self.env, capture_output=True)
        return done.stdout.decode(errors="replace")[-20000:]

    def down(self) -> None:
        """Stop and remove everything, volumes included."""
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "10")
