# One image for every process of the Procfile: docker-compose.yml runs it as
# `migrate`, `web` and `worker` with different commands.
FROM python:3.12-slim

# uv, copied from its official image at a pinned version.
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /uvx /bin/

# Compile bytecode once at build time; copy (not hard-link) from uv's cache
# mount; use the image's Python, never a downloaded one; put the project's
# environment first on PATH so `python` and `gunicorn` are the locked ones.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    PYTHONUNBUFFERED=1 \
    PATH="/app/.venv/bin:$PATH" \
    PORT=8000

WORKDIR /app

# Dependencies first, in their own layer: rebuilt only when uv.lock changes.
COPY pyproject.toml uv.lock .python-version ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev

COPY . .

# Hashed, compressed static files, served by WhiteNoise at run time. Settings
# need no secrets for this: nothing here reads SECRET_KEY or the database.
RUN python manage.py collectstatic --noinput --verbosity 0

# Run as an unprivileged user; the code and static files stay root-owned.
RUN useradd --system --no-create-home --uid 10001 app
USER app

EXPOSE 8000
# gunicorn binds 0.0.0.0:$PORT and starts $WEB_CONCURRENCY workers by itself.
CMD ["gunicorn", "messagecenter.wsgi", "--access-logfile", "-", "--limit-request-line", "4094", "--limit-request-fields", "50", "--limit-request-field_size", "8190"]
