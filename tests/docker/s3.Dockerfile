# The stand-in for MinIO (and mc) in the Docker stage (tests/docker): moto's S3 server, pinned by
# constraints.txt, on the base image the stage makes with debootstrap. Built from the
# repository's top folder, with the network of the host for pip:
#
#     docker build --network host -f tests/docker/s3.Dockerfile \
#         --build-arg BASE_IMAGE=wisata-base:TAG -t wisata-test-s3 .
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/s3/bin:$PATH
COPY constraints.txt /tmp/constraints.txt
RUN python3 -m venv /opt/s3 \
    && pip install -c /tmp/constraints.txt "moto[s3,server]" \
    && rm /tmp/constraints.txt
COPY tests/docker/s3_server.py /opt/s3/s3_server.py
ENTRYPOINT ["python", "/opt/s3/s3_server.py"]
