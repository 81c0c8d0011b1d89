# vqueue server image. Multi-node deployments set REDIS_URL, DATABASE_URL and VQ_SECRET_KEY;
# with none set the container runs the embedded Redis and PostgreSQL under /data (one box).
FROM python:3.11-slim AS build
# A C compiler for the fan-out's write loop (server/_straight.c), built into the wheel; the image
# that runs it needs none. Without it the wheel would hold the same loop in Python only.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY server ./server
COPY protocol ./protocol
COPY migrations ./migrations
COPY loadtest ./loadtest
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# The embedded PostgreSQL binaries need libz at run time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 vqueue \
    && mkdir /data && chown vqueue /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/* && rm -rf /wheels
USER vqueue
# No demo venue in an image: its staff key would be printed to every log collector.
ENV VQ_DATA_DIR=/data \
    VQ_DEMO=0 \
    PYTHONUNBUFFERED=1
VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)" || exit 1
ENTRYPOINT ["vqueue"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
