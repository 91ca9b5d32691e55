#!/bin/sh
# Installs the Debian libraries Qt (PySide6) needs, when they are missing and we may install.
# Does nothing on a machine that already has them, or that is not Debian-like.
set -e
PKGS="libglib2.0-0 libegl1 libgl1 libfontconfig1 libfreetype6 libx11-6 libx11-xcb1 libdbus-1-3 libxkbcommon0 \
libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-render-util0 \
libxcb-render0 libxcb-shape0 libxcb-util1 libxcb-xkb1 libxcb-randr0 libxcb-xfixes0 libxcb-sync1 \
libxcb-glx0 libxcomposite1 libxdamage1 libxrandr2 libxtst6 libxshmfence1 libnss3 libasound2 \
libxkbfile1 libgbm1"
command -v dpkg-query >/dev/null 2>&1 || exit 0
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "Qt needs these system packages:$missing" >&2
  echo "install them with: sudo apt-get install --no-install-recommends$missing" >&2
  exit 1
fi
echo "installing system libraries for Qt:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends $missing >/dev/null
