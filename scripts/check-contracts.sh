#!/usr/bin/env bash
# The contracts gate: buf lint, buf breaking against main's last commit (once there is
# one to compare with), and generated code that matches a fresh `buf generate`.
set -euo pipefail
cd "$(dirname "$0")/.."

npx buf lint

against=""
if git rev-parse --verify -q HEAD~1 >/dev/null && git cat-file -e HEAD~1:buf.yaml 2>/dev/null; then
  against="HEAD~1"
fi
if [ -n "$against" ]; then
  echo "buf breaking against $against"
  npx buf breaking --against ".git#ref=$against"
else
  echo "buf breaking: no earlier commit with contracts to compare against"
fi

before=$(git status --porcelain -- libs/contracts/src/gen)
npm run -s generate
after=$(git status --porcelain -- libs/contracts/src/gen)
if [ -n "$(git diff --stat -- libs/contracts/src/gen)" ] || [ "$before" != "$after" ]; then
  echo "libs/contracts/src/gen differs from a fresh 'buf generate': run 'npm run generate' and commit the result" >&2
  git status --porcelain -- libs/contracts/src/gen >&2
  exit 1
fi
echo "generated contracts are up to date"
