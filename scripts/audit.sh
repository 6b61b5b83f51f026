#!/usr/bin/env bash
# npm audit of production dependencies: fails on high or critical findings. Where the
# registry's audit endpoint cannot be reached (this machine's registry mirror answers 405),
# it says so and goes on: an unavailable audit service is not a finding.
set -uo pipefail
out=$(npm audit --omit=dev --audit-level=high 2>&1)
rc=$?
echo "$out" | tail -20
if [ $rc -ne 0 ]; then
  if echo "$out" | grep -q "audit endpoint returned an error"; then
    echo "npm audit: the registry's audit endpoint is unavailable here; skipped (not a finding)"
    exit 0
  fi
  exit $rc
fi
