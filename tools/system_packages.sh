#!/usr/bin/env bash
# Installs the Debian packages the study needs: real recordings (the DAVR-mini and DAVR-unseen source pools
# and the first chapter's example), Chromaprint's fpcalc (a baseline) and Chromium (the book's browser check).
# With --release, also the released model's training corpus (ausil_lite/datasets/corpus.py; about 4.5 GB installed),
# and FluidSynth with three soundfonts for its rendered scores (ausil_lite/datasets/renders.py).
# Idempotent: packages already present are not touched. Elsewhere it says what is missing and goes on.
set -eo pipefail
packages=(
  asterisk-moh-opsound-wav
  asterisk-core-sounds-en-wav
  wesnoth-1.16-music
  warzone2100-music
  nexuiz-music
  planetblupi-music-ogg
  asterisk-core-sounds-ru-wav
  libchromaprint-tools
  chromium
)
if [ "${1:-}" = "--release" ]; then
  packages+=(
    singularity-music ufoai-music asc-music pushover-data boswars-data tecnoballz-data heroes-sound-effects
    moon-lander-data oxygen-sounds sound-theme-freedesktop ktuberling-data
    asterisk-core-sounds-it-wav asterisk-core-sounds-it-g722 asterisk-core-sounds-it-gsm
    supertux-data supertuxkart-data widelands-data naev-data hedgewars-data freedroidrpg-data marsshooter-data
    megaglest-data starfighter-data trackballs-data zaz-data xmoto-data extremetuxracer-data lincity-ng-data
    frozen-bubble-data wesnoth-1.16-data lugaru-data minetest-data qabcs-data klettres-data
    fluidsynth fluid-soundfont-gm timgm6mb-soundfont opl3-soundfont
  )
fi
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
else
  echo "system_packages: not a Debian-family system; install these yourself: ${packages[*]}" >&2
  exit 0
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "system_packages: apt-get not found; missing: ${missing[*]}" >&2
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "system_packages: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
