# Test stand-in for the postgres image: Debian's PostgreSQL 15, trust auth on 127.0.0.1,
# database `harvester`, port $PGPORT (the test runs it with host networking).
ARG DEBIAN=harvester-test/debian
FROM ${DEBIAN}
RUN apt-get update -q \
    && apt-get install -y -q --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/*
COPY postgres-start.sh /usr/local/bin/postgres-start
# The data volume takes this directory's owner when first mounted.
RUN install -d -o postgres -g postgres -m 700 /var/lib/postgresql/data
USER postgres
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data PGPORT=5432
CMD ["postgres-start"]
