# One image for the API and the workers: `docker-compose up` runs both (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY engine engine
COPY schemas schemas
COPY service service
RUN pip install . && useradd --create-home --uid 10001 gradserve

USER gradserve
# gunicorn listens on all interfaces inside the container; the port is mapped by compose.
# GET /metrics: gunicorn's processes count in a private temporary directory it makes at start
# (PROMETHEUS_MULTIPROC_DIR unset) and removes at exit.
ENV HOST=0.0.0.0 PORT=8000
EXPOSE 8000
CMD ["gunicorn", "-c", "python:service.api.gunicorn_conf"]
