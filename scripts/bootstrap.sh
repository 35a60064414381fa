#!/usr/bin/env bash
# Idempotent setup on Debian 12: PostGIS for the local PostgreSQL cluster, the cluster running,
# .venv with the pinned Python packages, the soilclay database with PostGIS and the schema.
# Safe to run again: every step checks before it acts. Prints what it does.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_MAJOR="${PG_MAJOR:-15}"
UV_VERSION="0.13.8"
STEP="start"
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[setup] ERROR:\033[0m %s\n' "$*" >&2; exit 1; }
trap 'die "step \"$STEP\" failed (see the output above)"' ERR

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else SUDO="__none__"; fi
fi
as_root() {
    [ "$SUDO" = "__none__" ] && die "need root (or sudo) to run: $*"
    $SUDO "$@"
}

# --- system packages ------------------------------------------------------------------------
STEP="system packages"
apt_needed=()
command -v pg_lsclusters >/dev/null 2>&1 || apt_needed+=("postgresql-$PG_MAJOR" "postgresql-client-$PG_MAJOR")
[ -f "/usr/share/postgresql/$PG_MAJOR/extension/postgis.control" ] || apt_needed+=("postgresql-$PG_MAJOR-postgis-3")
# Monitoring: Prometheus 2.42 + promtool (started by the local stack, rule tests); Chromium for the browser tests.
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || apt_needed+=("prometheus")
[ -x /usr/bin/chromium ] || apt_needed+=("chromium")
if [ ${#apt_needed[@]} -gt 0 ]; then
    say "installing with apt: ${apt_needed[*]}"
    as_root apt-get update -qq || die "apt-get update failed: is a Debian package mirror reachable?"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_needed[@]}" >/dev/null \
        || die "apt-get install ${apt_needed[*]} failed"
else
    say "PostgreSQL $PG_MAJOR with PostGIS 3: installed"
fi

# --- PostgreSQL cluster -----------------------------------------------------------------------
STEP="PostgreSQL cluster"
if ! pg_lsclusters -h | awk -v v="$PG_MAJOR" '$1==v && $2=="main" {found=1} END {exit !found}'; then
    say "creating PostgreSQL $PG_MAJOR cluster 'main'"
    as_root pg_createcluster "$PG_MAJOR" main >/dev/null
fi
if pg_lsclusters -h | awk -v v="$PG_MAJOR" '$1==v && $2=="main" && $4 ~ /online/ {found=1} END {exit !found}'; then
    say "PostgreSQL $PG_MAJOR/main: online"
else
    say "starting PostgreSQL $PG_MAJOR/main"
    as_root pg_ctlcluster --skip-systemctl-redirect "$PG_MAJOR" main start || die "could not start PostgreSQL $PG_MAJOR/main"
fi
pg_admin() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 "$@"
    else psql -h /var/run/postgresql -U postgres -X -q -v ON_ERROR_STOP=1 "$@"; fi
}
me="$(id -un)"
if [ "$(pg_admin -d postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$me'")" != "1" ]; then
    say "creating PostgreSQL role '$me' (superuser, for local development)"
    pg_admin -d postgres -c "CREATE ROLE \"$me\" SUPERUSER LOGIN"
fi

# --- Python environment -----------------------------------------------------------------------
STEP="Python environment"
PY=""
for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        PY="$candidate"; break
    fi
done
[ -n "$PY" ] || die "Python 3.11 not found (apt-get install python3.11 python3.11-venv)"
if [ ! -x .venv/bin/python ]; then
    say "creating .venv with $($PY --version)"
    "$PY" -m venv .venv || die "python -m venv failed (apt-get install python3.11-venv)"
fi
want="$(cat requirements/lock.txt pyproject.toml | sha256sum | cut -c1-64)"
if [ "$(cat .venv/.soilclay-installed 2>/dev/null || true)" != "$want" ]; then
    say "installing pinned Python packages from requirements/lock.txt (first time: a few minutes)"
    .venv/bin/python -m pip install -q "uv==$UV_VERSION" || die "pip could not install uv from PyPI"
    .venv/bin/uv pip install -q --python .venv/bin/python -r requirements/lock.txt \
        || die "installing requirements/lock.txt failed"
    .venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e . || die "installing soilclay failed"
    echo "$want" > .venv/.soilclay-installed
else
    say "Python packages: up to date with requirements/lock.txt"
fi
# Bytecode, once: with PYTHONDONTWRITEBYTECODE set (as on this machine) Python never writes .pyc files, so
# every process would compile TensorFlow's, Keras' and Airflow's sources again (20-40 s per interpreter).
if [ "$(cat .venv/.soilclay-compiled 2>/dev/null || true)" != "$want" ]; then
    say "compiling the installed packages' bytecode (once per lock; a few minutes)"
    .venv/bin/python -m compileall -q -j 0 .venv/lib/python3.11/site-packages >/dev/null \
        || say "compileall reported files it could not compile (left as source; they still import)"
    echo "$want" > .venv/.soilclay-compiled
fi

# --- JavaScript libraries (served locally by the parcel map page; nothing is loaded from the internet) ---
STEP="JavaScript libraries"
want_js="$(cat web/package.json web/package-lock.json | sha256sum | cut -c1-64)"
if [ "$(cat web/node_modules/.soilclay-installed 2>/dev/null || true)" != "$want_js" ]; then
    command -v npm >/dev/null 2>&1 || die "npm not found (apt-get install npm)"
    say "installing the map page's JavaScript libraries from web/package-lock.json (npm ci)"
    npm ci --prefix web --no-audit --no-fund --loglevel=error >/dev/null || die "npm ci in web/ failed"
    echo "$want_js" > web/node_modules/.soilclay-installed
else
    say "JavaScript libraries: up to date with web/package-lock.json"
fi

# --- database ---------------------------------------------------------------------------------
STEP="database"
.venv/bin/soilclay db create
say "done"
