# One image for every feedline role; compose.yaml picks the role with the command.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir uv==0.13.8 \
 && uv pip install --system --no-cache --compile-bytecode -r requirements.lock
COPY feedline ./feedline
COPY schemas ./schemas
COPY streams ./streams
COPY processors ./processors
COPY models ./models
COPY index_store ./index_store
COPY service ./service
RUN uv pip install --system --no-cache --compile-bytecode --no-deps .
# State directories owned by the runtime user: a new Docker volume mounted there takes the
# image's ownership, so `nobody` can write its RocksDB tables and index snapshots.
RUN mkdir -p /var/lib/feedline/prompts /var/lib/feedline/snapshots \
 && chown -R nobody:nogroup /var/lib/feedline
USER nobody
ENTRYPOINT ["feedline"]
