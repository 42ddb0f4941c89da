# The ledger service: `docker build -t smartspace-budget .`, then see compose.yaml.
# Two stages: the wheel and its dependencies are installed into a virtualenv in a build
# stage, and only that virtualenv (the package, its Alembic migrations inside it, the price
# catalogue) is copied into a slim runtime image that runs as an unprivileged user.

FROM python:3.12-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/smartspace-budget
COPY pyproject.toml README.md ./
COPY src ./src
# The redis extra: rate limits shared by replicas when SMARTSPACE_BUDGET_REDIS_URL is set.
RUN /opt/smartspace-budget/bin/pip install ".[redis]"

FROM python:3.12-slim
ENV PATH=/opt/smartspace-budget/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SMARTSPACE_BUDGET_HOST=0.0.0.0 \
    SMARTSPACE_BUDGET_PORT=8000 \
    SMARTSPACE_BUDGET_LOG_FORMAT=json \
    SMARTSPACE_BUDGET_DATA_DIR=/var/lib/smartspace-budget
RUN groupadd --system --gid 10001 ledger \
    && useradd --system --uid 10001 --gid ledger --home-dir /var/lib/smartspace-budget \
       --create-home --shell /usr/sbin/nologin ledger
COPY --from=build /opt/smartspace-budget /opt/smartspace-budget
COPY docker/entrypoint.sh /usr/local/bin/entrypoint.sh
USER 10001:10001
WORKDIR /var/lib/smartspace-budget
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["entrypoint.sh", "healthcheck"]
ENTRYPOINT ["entrypoint.sh"]
CMD ["serve"]
