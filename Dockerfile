# nba in a container: `nba serve` with its embedded redis-server, the shipped rules and the Redis data on
# a volume. Debian bookworm because its python3 (3.11) and redis-server (7.0) are what nba is tested on.
#
#   docker build -t nba .
#   buildah bud --format docker --layers -t nba .    # buildah's default OCI format drops the HEALTHCHECK
#   (add --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt where TLS is inspected: see the deps stage)
#
# It listens on 0.0.0.0 (a published port must reach it), and nba refuses to serve anywhere but loopback
# until an API key exists (docs/access.md). So create the first, admin, key in the data volume, then serve:
#
#   docker volume create nba-data
#   ADMIN_KEY=$(docker run --rm -v nba-data:/var/lib/nba nba keys create --name admin --role admin)  # shown once
#   docker run -d --name nba -p 8080:8080 -v nba-data:/var/lib/nba --stop-timeout 30 nba
#   curl -s localhost:8080/v1/rules -H "Authorization: Bearer $ADMIN_KEY"
#   docker exec nba nba keys create --name "web shop" --role channel --channel web   # more keys, any time
#
# While it runs, admin commands go through docker exec: the embedded Redis listens on the container's own
# loopback, which another container on the same volume cannot reach.
#
# Any nba command runs the same way (`docker run ... nba rules check`, `docker exec nba nba audit`).
# Configuration is by the NBA_* variables of nba/settings.py alone: NBA_REDIS_URL for a Redis of your own
# (the volume then holds nothing), NBA_INSECURE_OPEN=1 only behind a gateway that authenticates callers,
# your own rules with -v "$PWD/rules:/etc/nba/rules:ro" (a saved change is picked up while it runs).
# --stop-timeout 30: a graceful stop may take 10 s for requests in flight, then Redis writes its file.
# A host directory in place of the volume must be writable by uid 10001. With a read-only root file system,
# give it a writable /tmp: a rule set published through Redis is validated in a temporary directory.

# The dependencies, in a virtual environment of their own stage: it is rebuilt only when pyproject.toml or
# constraints.txt change, and so is its layer in the image (200 MB, mostly scipy and numpy), which a change
# to nba's code then neither rebuilds, stores again nor ships again.
FROM debian:bookworm-slim AS deps
# python3-venv brings the interpreter the virtual environment links to, which the final stage installs too
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/nba
WORKDIR /src
# The runtime dependencies named in pyproject.toml: `fast` is uvloop; `dev` (test and lint tools) stays out.
# constraints.txt holds the versions CI tested. A network that inspects TLS with a certificate authority of
# its own (as our build machines' does) needs that authority for pip: --secret
# id=ca,src=/etc/ssl/certs/ca-certificates.crt, with docker build and buildah bud alike; a secret rather
# than a COPY because it is mounted for the step only, in no layer.
COPY pyproject.toml constraints.txt ./
RUN --mount=type=secret,id=ca \
    if [ -f /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && python3 -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
print("\n".join(p["dependencies"] + p["optional-dependencies"]["fast"]))' > requirements.txt \
 && /opt/nba/bin/pip install -q -c constraints.txt -r requirements.txt

# What the image gets of it. Nothing installs at run time, so pip and setuptools go, and nothing runs the
# libraries' own test suites (50 MB, mostly scipy's and numpy's). Byte-compiled here because the user that
# runs nba cannot write to /opt/nba: without .pyc files every process would compile numpy, scipy and
# aiohttp again at each start.
FROM deps AS venv
RUN /opt/nba/bin/pip uninstall -q -y pip setuptools \
 && find /opt/nba/lib -type d -name tests -prune -exec rm -rf {} + \
 && /opt/nba/bin/python -m compileall -q -j 0 /opt/nba

# nba itself, installed (not editable: the source stays in this stage) under /stage, from where the final
# stage lays it over the virtual environment: its own few megabytes, in a layer of their own.
FROM deps AS app
COPY README.md LICENSE ./
COPY nba ./nba
RUN --mount=type=secret,id=ca \
    if [ -f /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && /opt/nba/bin/pip install -q --no-warn-script-location -c constraints.txt --root /stage '.[fast]' \
 && /opt/nba/bin/python -m compileall -q -j 0 /stage

FROM debian:bookworm-slim
# redis-server: the embedded Redis nba starts when NBA_REDIS_URL is not set. ca-certificates: rediss:// to
# a managed Redis. tini: an init that reaps orphans and passes signals on; nba itself stops gracefully on
# SIGTERM and stops its redis-server after the requests in flight (so tini must not signal the group).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 redis-server ca-certificates tini \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
# /run/nba-keys: where compose.yaml's nba-keys service leaves Prometheus's key; a new named volume takes
# its owner from the image's directory, so nba's user can write it.
# A fixed uid so that a volume's owner stays right across rebuilds; numeric USER below because Kubernetes'
# runAsNonRoot can only verify a number. The data directory is the owner's alone: it holds the Redis
# password and everything Redis keeps (docs/access.md).
RUN groupadd --gid 10001 nba \
 && useradd --uid 10001 --gid nba --no-create-home --no-log-init --home-dir /var/lib/nba \
        --shell /usr/sbin/nologin nba \
 && install -d -o nba -g nba -m 0700 /var/lib/nba \
 && install -d -o nba -g nba -m 0755 /run/nba-keys
COPY --from=venv /opt/nba /opt/nba
COPY --from=app /stage/ /
# Owned by root: the server reads its rules and never writes them.
COPY rules /etc/nba/rules
ENV PATH=/opt/nba/bin:$PATH \
    NBA_HOST=0.0.0.0 \
    NBA_PORT=8080 \
    NBA_RULES_DIR=/etc/nba/rules \
    NBA_DATA_DIR=/var/lib/nba
USER 10001:10001
# The data directory is also the working directory: the one place this user may write (`nba log export
# --out decisions.jsonl` lands on the volume).
WORKDIR /var/lib/nba
VOLUME /var/lib/nba
EXPOSE 8080
# /healthz answers without a key; no curl in the image, so Python's urllib asks (an HTTP error exits 1)
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; \
h = os.environ.get('NBA_HOST') or '127.0.0.1'; h = {'0.0.0.0': '127.0.0.1', '::': '::1'}.get(h, h); \
h = '[' + h + ']' if ':' in h else h; port = os.environ.get('NBA_PORT') or '8080'; \
urllib.request.urlopen('http://' + h + ':' + port + '/healthz', timeout=4)"]
# -s: tini reaps orphans also when it is not process 1 (docker run --init, buildah run)
ENTRYPOINT ["/usr/bin/tini", "-s", "--", "nba"]
CMD ["serve"]
# Last, so that a new VERSION changes no layer. Keep it in step with pyproject.toml (tests/test_container.py
# compares it with `nba --version`).
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="nba" \
      org.opencontainers.image.description="Real-time next-best-action decisioning server over Redis" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"
