# Test stand-in for python:3.11-slim where no registry is reachable: Debian bookworm's
# Python 3.11 on a base image imported from debootstrap (see tests/compose.py).
ARG DEBIAN=harvester-test/debian
FROM ${DEBIAN}
RUN apt-get update -q \
    && apt-get install -y -q --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
