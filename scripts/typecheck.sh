#!/usr/bin/env bash
# Typechecks every workspace package with its tsconfig.json, tests and benches included
# (the build's tsconfig.build.json leaves the tests out, and vitest does not typecheck).
# Needs the libs built: their types come from their dist/.
set -euo pipefail
cd "$(dirname "$0")/.."

failed=()
for config in libs/*/tsconfig.json services/*/tsconfig.json test/tsconfig.json deploy/tsconfig.json; do
  dir=$(dirname "$config")
  if ! out=$(npx tsc -p "$config" --noEmit 2>&1); then
    echo "$out"
    failed+=("$dir")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "typecheck failed in: ${failed[*]}" >&2
  exit 1
fi
echo "typecheck: every package, tests included, compiles"
