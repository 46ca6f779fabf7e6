# The natsbank image: `docker build -t natsbank:0.1.0 .` (see docs/DEPLOY.md).
# Build stage: install natsbank and its dependencies into a venv that the runtime stage copies.
FROM python:3.11.14-slim-bookworm AS build
WORKDIR /src
RUN python -m venv /opt/natsbank
COPY pyproject.toml README.md ./
COPY eventsource ./eventsource
COPY projections ./projections
COPY benchmark ./benchmark
RUN /opt/natsbank/bin/pip install --no-cache-dir --disable-pip-version-check .

# Runtime stage: no compiler, no sources, not root.
FROM python:3.11.14-slim-bookworm
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /tmp/natsbank natsbank
COPY --from=build /opt/natsbank /opt/natsbank
# `streams init` reads ./streams.yaml unless NATSBANK_STREAMS_FILE names another file.
COPY streams.yaml /app/streams.yaml
ENV PATH=/opt/natsbank/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NATSBANK_HOME=/tmp/natsbank
WORKDIR /app
USER 10001:10001
ENTRYPOINT ["natsbank"]
CMD ["--help"]
