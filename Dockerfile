# The service image: the same install and the same command as the README.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY domain domain
COPY projections projections
COPY infra infra
COPY api api
RUN pip install --no-cache-dir -e .
# The service never needs root: it runs as its own user, owning only its data folder.
RUN useradd --system --uid 10001 --home-dir /var/lib/chipledger chipledger \
    && mkdir -p /var/lib/chipledger && chown chipledger:chipledger /var/lib/chipledger
ENV CHIPLEDGER_LOG_FORMAT=json
# The embedded ledger and the signing key outlive the container: the database accepts no
# other key (see README).
ENV CHIPLEDGER_DATABASE_URL=sqlite:////var/lib/chipledger/chipledger.db
ENV CHIPLEDGER_SIGNING_KEY_FILE=/var/lib/chipledger/signing-key.pem
VOLUME /var/lib/chipledger
USER chipledger
WORKDIR /var/lib/chipledger
EXPOSE 8000
# Ready means the database answers (/readyz); the slim image has no curl, Python has urllib.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
CMD ["chipledger", "serve", "--host", "0.0.0.0", "--port", "8000"]
