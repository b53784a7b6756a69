# The stand-in for the official postgres image in the Docker stage (tests/docker): Debian's
# PostgreSQL on the base image the stage makes with debootstrap (no registry is reached there).
# Built from the repository's top folder, with the network of the host for apt:
#
#     docker build --network host -f tests/docker/postgres.Dockerfile \
#         --build-arg BASE_IMAGE=wisata-base:TAG -t wisata-test-postgres .
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
# No cluster of the package's own (the entrypoint makes one in the volume), no service started
# by the package's scripts during the build.
RUN mkdir -p /etc/postgresql-common \
    && echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf \
    && printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
COPY tests/docker/postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
# A fast shutdown, as the official image's STOPSIGNAL: clients disconnected, nothing lost.
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]
