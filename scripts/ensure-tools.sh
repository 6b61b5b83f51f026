#!/usr/bin/env bash
# Debian packages the tests call from outside Node: promtool (metrics format),
# python3-grpcio and grpc-tools with the upstream health proto (non-Node gRPC clients),
# python3-scipy (drift statistics checked against scipy.stats), chromium (the dashboard
# rendered headless). Installs what is missing with apt-get; where it cannot (not root
# and no passwordless sudo, or no apt-get), it names the packages and exits 2.
set -euo pipefail

need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
/usr/bin/python3 -c 'import grpc' >/dev/null 2>&1 || need+=(python3-grpcio)
/usr/bin/python3 -c 'import grpc_tools' >/dev/null 2>&1 || need+=(python3-grpc-tools)
[ -f /usr/share/grpc-proto/grpc/health/v1/health.proto ] || need+=(grpc-proto)
/usr/bin/python3 -c 'import scipy.stats' >/dev/null 2>&1 || need+=(python3-scipy)
command -v chromium >/dev/null 2>&1 || need+=(chromium)

if [ ${#need[@]} -eq 0 ]; then
  echo "test tools present: promtool, python3-grpcio, grpc-tools, the health proto, scipy, chromium"
  exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    echo "the tests need these Debian packages: ${need[*]}" >&2
    echo "this user is not root and has no passwordless sudo; install them with:" >&2
    echo "  sudo apt-get install -y --no-install-recommends ${need[*]}" >&2
    exit 2
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "the tests need these Debian packages: ${need[*]}; this machine has no apt-get: install their equivalents" >&2
  exit 2
fi

echo "installing the test tools: ${need[*]} (apt-get, once per machine)"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "test tools installed: ${need[*]}"
