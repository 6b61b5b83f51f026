#!/usr/bin/env bash
# Starts Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432) when they do not answer,
# with the commands this kind of machine documents, and makes sure the `test` database
# exists. Where it cannot, it says what is missing and how to provide it, and exits 2.
set -euo pipefail

fail() {
  echo "$*" >&2
  exit 2
}

# redis-server too: the Redis Cluster and Sentinel tests start their own servers on loopback
# (@ballast/queue/testing), with redis-cli --cluster create; Sentinel is `redis-server --sentinel`.
for tool in redis-cli redis-server pg_isready psql; do
  command -v "$tool" >/dev/null 2>&1 ||
    fail "the tests need Redis and PostgreSQL (and their clients); '$tool' is not installed: apt-get install redis-server postgresql"
done

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  command -v redis-server >/dev/null 2>&1 ||
    fail "no Redis answers on 127.0.0.1:6379 and redis-server is not installed: apt-get install redis-server"
  echo "starting redis-server on 127.0.0.1:6379 (nothing kept on disk)"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi

if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  command -v pg_ctlcluster >/dev/null 2>&1 ||
    fail "no PostgreSQL answers on 127.0.0.1:5432 and pg_ctlcluster is not installed: apt-get install postgresql"
  echo "starting postgresql"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start ||
    fail "could not start PostgreSQL (start it as root, or set it up to listen on 127.0.0.1:5432 with trust auth)"
fi

for _ in $(seq 1 30); do
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && pg_isready -h 127.0.0.1 -p 5432 -q; then
    psql -h 127.0.0.1 -U postgres -d postgres -tAc "select 1 from pg_database where datname='test'" | grep -q 1 ||
      psql -h 127.0.0.1 -U postgres -d postgres -qc 'create database test'
    echo "redis and postgresql answer (database test present)"
    exit 0
  fi
  sleep 1
done
fail "redis or postgresql did not answer within 30 s of starting"
