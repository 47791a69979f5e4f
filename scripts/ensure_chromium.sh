#!/usr/bin/env bash
# Make sure Debian's Chromium is at /usr/bin/chromium for the browser test (tests/test_browser.py).
# The test drives the system browser through Playwright's Python API; it never runs
# `playwright install` (no download from outside the package registries).
#
#   scripts/ensure_chromium.sh        # installs with apt-get when missing (needs root), else reports
#
# Exit status: 0 when /usr/bin/chromium is present afterwards, 1 otherwise.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
  echo "ensure_chromium: $CHROMIUM is present ($("$CHROMIUM" --version 2>/dev/null || echo 'version unknown'))"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_chromium: $CHROMIUM is missing and apt-get is not available on this machine." >&2
  echo "ensure_chromium: install Chromium so that $CHROMIUM exists, then re-run the tests." >&2
  exit 1
fi

if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "ensure_chromium: $CHROMIUM is missing; run as root (or with sudo):" >&2
    echo "ensure_chromium:     apt-get update && apt-get install -y chromium" >&2
    exit 1
  fi
else
  SUDO=""
fi

echo "ensure_chromium: $CHROMIUM is missing; installing Debian's chromium package with apt-get"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# fonts-liberation (a Recommends of chromium-common) gives legible text in the screenshots
# without pulling the rest of the recommended desktop packages.
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null

if [ -x "$CHROMIUM" ]; then
  echo "ensure_chromium: installed $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
else
  echo "ensure_chromium: apt-get finished but $CHROMIUM is still missing" >&2
  exit 1
fi
