#!/usr/bin/env bash
# Installs the official OpenAI and Anthropic client libraries (pinned in
# tests/scripts/serve/package-lock.json) into DEST (default: build/serve-npm), outside the source tree,
# for the optiq serve integration tests. Idempotent: does nothing when the pinned versions are present.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${1:-build/serve-npm}"
SRC=tests/scripts/serve
if [ -f "$DEST/package-lock.json" ] && cmp -s "$SRC/package-lock.json" "$DEST/package-lock.json" &&
   [ -d "$DEST/node_modules/openai" ] && [ -d "$DEST/node_modules/@anthropic-ai/sdk" ]; then
  exit 0
fi
mkdir -p "$DEST"
cp "$SRC/package.json" "$SRC/package-lock.json" "$DEST/"
(cd "$DEST" && npm ci --no-audit --no-fund --loglevel=error)
