#!/usr/bin/env bash
# Debian packages some tests call: promtool (metrics format), python3-grpcio with the
# upstream health proto (a non-Node gRPC client, probing like Kubernetes does), python3-scipy
# (monitor's drift statistics are checked against scipy.stats on the same samples).
set -euo pipefail

need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
/usr/bin/python3 -c 'import grpc' >/dev/null 2>&1 || need+=(python3-grpcio)
/usr/bin/python3 -c 'import grpc_tools' >/dev/null 2>&1 || need+=(python3-grpc-tools)
[ -f /usr/share/grpc-proto/grpc/health/v1/health.proto ] || need+=(grpc-proto)
/usr/bin/python3 -c 'import scipy.stats' >/dev/null 2>&1 || need+=(python3-scipy)
command -v chromium >/dev/null 2>&1 || need+=(chromium)

if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "promtool, python3-grpcio, python3-scipy and the health proto are present"
