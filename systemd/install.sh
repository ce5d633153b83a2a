#!/usr/bin/env bash
# Install heritage-audio on an installation machine (Debian/Ubuntu, systemd), as root:
#   sudo systemd/install.sh [--enable]
# Creates the system user heritage-audio (in group audio), /etc/heritage-audio,
# /var/lib/heritage-audio and a virtual environment in /opt/heritage-audio/venv, installs
# the capture daemon unit, and with --enable starts it at boot. Re-running upgrades.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
prefix=/opt/heritage-audio

[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo $0)" >&2; exit 1; }

apt-get install -y --no-install-recommends python3-venv libportaudio2
getent group audio >/dev/null || groupadd --system audio
id heritage-audio >/dev/null 2>&1 ||
  useradd --system --home-dir /var/lib/heritage-audio --shell /usr/sbin/nologin \
    --groups audio --user-group heritage-audio

install -d -m 0755 "$prefix" /etc/heritage-audio
install -d -m 0750 -o heritage-audio -g heritage-audio /var/lib/heritage-audio
[ -e /etc/heritage-audio/pipeline.toml ] ||
  install -m 0640 -g heritage-audio "$here/config/example.toml" /etc/heritage-audio/pipeline.toml

python3 -m venv "$prefix/venv"
"$prefix/venv/bin/pip" install --quiet --upgrade pip
"$prefix/venv/bin/pip" install --quiet "$here"

install -m 0644 "$here/systemd/heritage-audio-daemon.service" /etc/systemd/system/
systemctl daemon-reload
if [ "${1:-}" = "--enable" ]; then
  systemctl enable --now heritage-audio-daemon.service
fi
echo "installed; edit /etc/heritage-audio/pipeline.toml, then: systemctl restart heritage-audio-daemon"
