# The Spark driver of `wisata-retrain --engine spark` (the compose file's `spark` profile): the
# service's image plus Java, Debian's PostgreSQL JDBC driver and the spark extra at the versions
# of constraints.txt. Build the service's image first (docker compose build api), then this one.
ARG BASE_IMAGE=wisata:local
FROM ${BASE_IMAGE}
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends default-jre-headless libpostgresql-jdbc-java \
    && rm -rf /var/lib/apt/lists/*
COPY constraints.txt /tmp/constraints.txt
RUN python -m pip install --no-cache-dir -c /tmp/constraints.txt pyspark pyarrow \
    && rm /tmp/constraints.txt
USER wisata
