#!/bin/sh
# Generates ./configure from configure.ac (run once on a fresh checkout).
set -e
cd "$(dirname "$0")"
mkdir -p build-aux m4
# automake does not copy the TAP driver the integration tests use by itself.
cp -f "$(automake --print-libdir)/tap-driver.sh" build-aux/
autoreconf --install --force
