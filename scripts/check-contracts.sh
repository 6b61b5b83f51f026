#!/usr/bin/env bash
# The contracts gate: buf lint, buf breaking, and generated code that matches a fresh
# `buf generate`.
#
# Breaking changes are judged against every state of the contracts that main has held
# (each commit that changed proto/ or buf.yaml), so against the last landed main too:
# comparing with HEAD~1 alone let a break made two commits before the last one through.
# A deliberate break is declared in buf.yaml (breaking.ignore_only), with the reason.
# BALLAST_CONTRACTS_AGAINST=<ref> compares against that one ref instead.
set -euo pipefail
cd "$(dirname "$0")/.."

npx buf lint

if [ "$(git rev-parse --is-shallow-repository)" = "true" ]; then
  echo "buf breaking: this clone is shallow; the states it lacks are not compared (git fetch --unshallow)" >&2
fi

if [ -n "${BALLAST_CONTRACTS_AGAINST:-}" ]; then
  refs=("$BALLAST_CONTRACTS_AGAINST")
else
  mapfile -t refs < <(git log --format=%H -- proto buf.yaml)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
declare -A seen=()
compared=0
for ref in "${refs[@]}"; do
  [ -n "$ref" ] || continue
  # The same contracts at several commits are compared once.
  tree=$(git rev-parse "$ref:proto")-$(git rev-parse "$ref:buf.yaml" 2>/dev/null || echo none)
  [ -z "${seen[$tree]:-}" ] || continue
  seen[$tree]=1
  dir="$work/$compared"
  mkdir -p "$dir"
  git archive "$ref" proto $(git cat-file -e "$ref:buf.yaml" 2>/dev/null && echo buf.yaml) | tar -x -C "$dir"
  if ! npx buf breaking --against "$dir"; then
    echo "buf breaking: the contracts break those of $(git log -1 --format='%h (%ad, %s)' --date=short "$ref" | cut -c1-120)" >&2
    exit 1
  fi
  compared=$((compared + 1))
done
echo "buf breaking: compatible with the $compared earlier states of the contracts on this branch"

before=$(git status --porcelain -- libs/contracts/src/gen)
npm run -s generate
after=$(git status --porcelain -- libs/contracts/src/gen)
if [ -n "$(git diff --stat -- libs/contracts/src/gen)" ] || [ "$before" != "$after" ]; then
  echo "libs/contracts/src/gen differs from a fresh 'buf generate': run 'npm run generate' and commit the result" >&2
  git status --porcelain -- libs/contracts/src/gen >&2
  exit 1
fi
echo "generated contracts are up to date"
