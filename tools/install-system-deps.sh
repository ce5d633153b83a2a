#!/usr/bin/env bash
# Debian/Ubuntu packages the tests use: PortAudio (capture), PulseAudio (a null sink to
# capture from), Chromium (the dashboard test), promtool (metrics validation),
# systemd-analyze (unit checks).
# Installs only what is missing; needs root or sudo when something is.
set -euo pipefail

packages=(libportaudio2 libasound2-plugins pulseaudio pulseaudio-utils chromium prometheus systemd
  docker-compose shellcheck)  # compose file validation (`config` needs no engine), scripts
packages+=(strace)  # tests/test_file_analysis.py counts the opens of an analysed file
# Only to regenerate the heritage corpus and its fixtures (tools/make_heritage_corpus.py)
# and to gather the real development set (tools/gather_real_audio.py decodes MP3 and AAC
# that libsndfile refuses with ffmpeg):
# WITH_CORPUS_TOOLS=1 bash tools/install-system-deps.sh
if [ "${WITH_CORPUS_TOOLS:-0}" = 1 ]; then
  packages+=(fluidsynth fluid-soundfont-gm timgm6mb-soundfont musescore-general-soundfont
    espeak-ng festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts festvox-italp16k
    festvox-itapc16k festvox-ca-ona-hts festvox-czech-dita festvox-czech-machac festvox-ru
    festvox-suopuhe-lj festvox-suopuhe-mv ffmpeg)
fi
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
