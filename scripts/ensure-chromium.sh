#!/usr/bin/env bash
# The alert preview test renders HTML in headless Chromium (Debian package). Install it
# when missing; CI runs as root on a Debian machine.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != "0" ]; then echo "ensure-chromium: chromium missing and not root; install the Debian package 'chromium'" >&2; exit 2; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null
