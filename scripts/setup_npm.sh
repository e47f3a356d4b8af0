#!/usr/bin/env bash
# Installs the test-only npm packages (pinned in tests/scripts/tokenizer_diff/package-lock.json) into DEST
# (default: build/npm), outside the source tree. Idempotent: does nothing when the pinned version is present.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${1:-build/npm}"
SRC=tests/scripts/tokenizer_diff
want=$(node -e "console.log(require('./$SRC/package.json').dependencies['@lenml/tokenizers'])")
have=$(node -e "try{console.log(require(require('path').resolve('$DEST/node_modules/@lenml/tokenizers/package.json')).version)}catch(e){console.log('')}")
if [ "$have" = "$want" ]; then exit 0; fi
mkdir -p "$DEST"
cp "$SRC/package.json" "$SRC/package-lock.json" "$DEST/"
(cd "$DEST" && npm ci --no-audit --no-fund --loglevel=error)
