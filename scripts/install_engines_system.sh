#!/usr/bin/env bash
# The Debian half of sts-service's speech engines, as root (make install-engines-system, .ci/run):
# apertium with every Debian language pair (GPL), and SVOX Pico (libttspico-utils) from Debian's
# non-free component, which this script enables (its licence: apps/sts-service/README.md, Engines).
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "install_engines_system.sh: needs root (it runs apt-get install); try: sudo make install-engines-system" >&2
  exit 1
fi

echo "install-engines-system: Pico's voice data is in Debian's non-free component (licence: apps/sts-service/README.md, Engines)"
# Debian's non-free and contrib components, on the same mirror and key as the main sources.
nonfree=/etc/apt/sources.list.d/debian-non-free.sources
if [ ! -f "$nonfree" ]; then
  . /etc/os-release
  cat >"$nonfree" <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: ${VERSION_CODENAME} ${VERSION_CODENAME}-updates
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
fi
apt-get update -qq

# Every real pair: "translation data" packages, not the transitional dummies or one-language data.
mapfile -t pairs < <(apt-cache search --names-only '^apertium-[a-z]+-[a-z]+$' \
  | grep -i -E 'translat' | grep -v -i -e 'transitional dummy' -e '^apertium-eval-' | cut -d' ' -f1 | sort)
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  apertium libttspico-utils "${pairs[@]}"
echo "install-engines-system: installed apertium, libttspico-utils and ${#pairs[@]} Apertium pairs"
