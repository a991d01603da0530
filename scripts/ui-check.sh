#!/usr/bin/env bash
# Rebuilds the dashboard bundle from its sources and the pinned lock file
# (npm ci) in a temporary directory, and fails when the result differs from
# the checked-in internal/api/ui/dist/ by a single byte. The cheap check in
# `go test ./internal/api/ui` compares hashes and needs no Node; this one
# proves the sources really build into what is checked in.
# Usage: scripts/ui-check.sh
set -euo pipefail
cd "$(dirname "$0")/../internal/api/ui"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r package.json package-lock.json build.mjs src "$work/"
(
  cd "$work"
  npm ci --no-audit --no-fund --loglevel=error
  node build.mjs dist
)
if ! diff -r "$work/dist" dist; then
  echo "internal/api/ui/dist is stale: run \`make ui\` and commit it" >&2
  exit 1
fi
echo "internal/api/ui/dist matches a fresh build from package-lock.json"
