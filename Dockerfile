# The study server's image: the web half only (no torch, no pipeline extras), so it stays small
# and starts in about a second. Asset runs and study files are mounted, read-only.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    FIELDMARK_HOME=/srv/var FIELDMARK_STUDIES_DIR=/srv/studies FIELDMARK_ASSETS_DIR=/srv/assets \
    FIELDMARK_ENVIRONMENT=production

# R's lme4 is the statistics engine of the analysis pages (app/analysis/lme4.py); Debian's packages,
# without the recommended extras.
RUN apt-get update && apt-get install -y --no-install-recommends r-base-core r-cran-lme4 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /srv/app
COPY pyproject.toml README.md ./
COPY app ./app
COPY fieldmark ./fieldmark
COPY pipeline ./pipeline
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
RUN pip install . && useradd --create-home --uid 10001 fieldmark && mkdir -p /srv/var && chown fieldmark /srv/var
USER fieldmark
EXPOSE 8000
CMD ["fieldmark", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2", "--no-upgrade"]
