# The bot in a container: slim Python, non-root, the shipped model inside, the README's install.
# CI does not build this image (no Docker daemon or base images there): it only uses the
# README's tested commands. See docs/operations.md ("Docker").
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 DATA_DIR=/data
RUN useradd --system --uid 10001 --home-dir /app kzskin \
 && install -d -o kzskin -m 0700 /data
WORKDIR /app
COPY --chown=kzskin:kzskin . /app
# The README's first command, without the final `python -m bot` (that is the CMD).
RUN python3 -m venv .venv && . .venv/bin/activate && pip install -e . \
 && chown -R kzskin:kzskin /app/.venv
USER kzskin
VOLUME ["/data"]
EXPOSE 8443 9090
# Exit code 2 is a configuration problem (one line on stderr); compose does not restart on it.
CMD ["/app/.venv/bin/python", "-m", "bot"]
