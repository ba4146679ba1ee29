#!/usr/bin/env bash
# Installs the Debian 12 packages clipcap builds and tests with, if missing.
# Used by demo.sh, test.sh and CI; needs root (or sudo) only when something
# is missing.
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev libomp-14-dev
      libopenmpi-dev openmpi-bin liblmdb-dev libuv1-dev libwebp-dev libzstd-dev zstd
      libjpeg62-turbo-dev libpng-dev libopenblas-dev libdnnl-dev libjansson-dev libxxhash-dev
      libutf8proc-dev python3 time openjdk-17-jdk-headless chromium strace util-linux)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
