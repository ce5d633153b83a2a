#!/usr/bin/env bash
# Install or upgrade heritage-audio on a Debian/Ubuntu machine with systemd, as root:
#   sudo systemd/install.sh [--enable daemon,api,worker] [--admin NAME]
# Creates the system user heritage-audio (in group audio), /etc/heritage-audio (settings,
# pipeline, credentials), /var/lib/heritage-audio (data) and a virtual environment in
# /opt/heritage-audio/venv; installs the daemon, API and worker units; applies database
# migrations (`heritage-audio db upgrade`). --enable starts the named units now and at boot
# (an installation machine: daemon; a central server: api,worker). --admin creates the first
# administrator, with the password read from standard input. Re-running upgrades: existing
# settings and secrets are kept, migrations run, enabled units restart.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
prefix=/opt/heritage-audio
etc=/etc/heritage-audio
data=/var/lib/heritage-audio
user=heritage-audio
units=(heritage-audio-daemon heritage-audio-api heritage-audio-worker)

enable=""
admin=""
while [ $# -gt 0 ]; do
  case "$1" in
    --enable) enable="${2:?--enable needs a list, e.g. daemon or api,worker}"; shift 2 ;;
    --admin) admin="${2:?--admin needs a user name}"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo $0)" >&2; exit 1; }

# Standard input is kept for --admin's password: nothing before reads it.
apt-get update -qq </dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  python3-venv libportaudio2 libsndfile1 </dev/null
getent group audio >/dev/null || groupadd --system audio
id "$user" >/dev/null 2>&1 ||
  useradd --system --home-dir "$data" --shell /usr/sbin/nologin --groups audio --user-group "$user"
# An existing user created by hand may lack the audio group.
id -nG "$user" | grep -qw audio || usermod --append --groups audio "$user"

install -d -m 0755 "$prefix" "$etc"
install -d -m 0700 "$etc/credentials"
install -d -m 0750 -o "$user" -g "$user" "$data" "$data/maxxi"
[ -e "$etc/pipeline.toml" ] ||
  install -m 0640 -g "$user" "$here/config/example.toml" "$etc/pipeline.toml"
# Settings: every variable, commented out at its default; uncomment what differs.
[ -e "$etc/heritage-audio.env" ] ||
  install -m 0640 -g "$user" "$here/config/example.env" "$etc/heritage-audio.env"
# Secrets, readable by root only; systemd hands them to the units (LoadCredential=).
# DB_PASSWORD: replace it with the PostgreSQL role's password when DB_HOST is set.
umask 077
for secret in SECRET_KEY DB_PASSWORD; do
  [ -s "$etc/credentials/$secret" ] ||
    python3 -c 'import secrets; print(secrets.token_urlsafe(48), end="")' >"$etc/credentials/$secret"
done
umask 022

[ -x "$prefix/venv/bin/python" ] || python3 -m venv "$prefix/venv"
"$prefix/venv/bin/pip" install --quiet --upgrade pip </dev/null
"$prefix/venv/bin/pip" install --quiet --upgrade "$here" </dev/null

for unit in "${units[@]}"; do
  install -m 0644 "$here/systemd/$unit.service" /etc/systemd/system/
done
systemctl daemon-reload

# Run a heritage-audio command as the service user, with the units' settings and secrets.
as_service() {
  systemd-run --quiet --wait --pipe --collect --service-type=exec \
    --uid="$user" --gid="$user" --working-directory="$data" \
    -p ProtectSystem=strict -p ReadWritePaths="$data" -p PrivateTmp=yes \
    -E ENVIRONMENT=production -E HERITAGE_CONFIG="$etc/pipeline.toml" \
    -E HERITAGE_DATA_DIR="$data" -E MAXXI_OUTPUT_DIR="$data/maxxi" \
    -p EnvironmentFile=-"$etc/heritage-audio.env" \
    -p LoadCredential=SECRET_KEY:"$etc/credentials/SECRET_KEY" \
    -p LoadCredential=DB_PASSWORD:"$etc/credentials/DB_PASSWORD" \
    "$prefix/venv/bin/heritage-audio" "$@"
}

# The API refuses to start on a schema behind the code: migrate before (re)starting it.
as_service db upgrade </dev/null
if [ -n "$admin" ]; then
  as_service users add "$admin" --role admin
fi

for unit in "${units[@]}"; do
  # An upgrade: units running the old code restart on the new one.
  systemctl try-restart "$unit.service"
done
IFS=, read -r -a wanted <<<"$enable"
for name in "${wanted[@]}"; do
  systemctl enable --now "heritage-audio-$name.service"
done
echo "installed; settings in $etc/heritage-audio.env and $etc/pipeline.toml"
echo "units: ${units[*]} (systemctl enable --now <unit>)"
