# Test stand-in for MinIO: moto's S3 server (from the wheelhouse), on $MOTO_PORT.
ARG PYTHON=harvester-test/python
FROM ${PYTHON}
COPY wheels /wheels
RUN python3 -m venv /opt/moto \
    && /opt/moto/bin/pip install --no-cache-dir --no-index --find-links /wheels "moto[server]"
ENV MOTO_PORT=9000
CMD ["sh", "-c", "exec /opt/moto/bin/moto_server -H 127.0.0.1 -p $MOTO_PORT"]
