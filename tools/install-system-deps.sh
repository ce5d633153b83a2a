#!/usr/bin/env bash
# Debian/Ubuntu packages the tests use: PortAudio (capture), PulseAudio (a null sink to
# capture from), Chromium (the dashboard test), promtool (metrics validation),
# systemd-analyze (unit checks).
# Installs only what is missing; needs root or sudo when something is.
set -euo pipefail

packages=(libportaudio2 libasound2-plugins pulseaudio pulseaudio-utils chromium prometheus systemd
  docker-compose shellcheck)  # compose file validation (`config` needs no engine), scripts
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing system packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
