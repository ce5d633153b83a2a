#!/usr/bin/env bash
# Create the compose deployment's secrets, once: random values in ./secrets/ (next to
# docker-compose.yml), which compose mounts in /run/secrets. Existing files are kept.
#   deploy/init-secrets.sh
# To use a password of your own, write it (without a newline) to the file before `up`:
#   printf '%s' 'the password' > secrets/DB_PASSWORD
# The database password only takes effect when the PostgreSQL volume is first created.
set -euo pipefail
dir="$(cd "$(dirname "$0")/.." && pwd)/secrets"
# The directory is private to its owner; the files are world-readable inside it because the
# containers read them as their own users (heritage 10001, postgres, grafana).
install -d -m 0700 "$dir"
for name in SECRET_KEY DB_PASSWORD GRAFANA_ADMIN_PASSWORD; do
  if [ ! -s "$dir/$name" ]; then
    python3 -c 'import secrets; print(secrets.token_urlsafe(32), end="")' >"$dir/$name"
    chmod 0644 "$dir/$name"
    echo "created secrets/$name"
  fi
done
echo "Grafana: user admin, password in secrets/GRAFANA_ADMIN_PASSWORD"
