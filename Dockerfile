# The service image: the same install and the same command as the README.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain domain
COPY projections projections
COPY infra infra
COPY api api
RUN pip install --no-cache-dir -e .
ENV CHIPLEDGER_LOG_FORMAT=json
# The signing key outlives the container: the database accepts no other key (see README).
ENV CHIPLEDGER_SIGNING_KEY_FILE=/var/lib/chipledger/signing-key.pem
VOLUME /var/lib/chipledger
EXPOSE 8000
CMD ["chipledger", "serve", "--host", "0.0.0.0", "--port", "8000"]
