#!/usr/bin/env bash
# Make sure RabbitMQ, Redis and PostgreSQL answer on loopback; start the local
# servers when they are installed but stopped; say clearly when one is absent.
set -u
ok=0

wait_for() {  # name, seconds, command...
  local name=$1 secs=$2; shift 2
  for _ in $(seq 1 "$secs"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "!! $name did not come up" >&2; return 1
}

if redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then :
elif command -v redis-server >/dev/null; then
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  wait_for Redis 20 redis-cli -h 127.0.0.1 ping || ok=1
else echo "!! Redis is not installed (apt-get install redis-server)" >&2; ok=1; fi

if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then :
elif command -v pg_ctlcluster >/dev/null; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  wait_for PostgreSQL 30 pg_isready -h 127.0.0.1 -p 5432 -q || ok=1
else echo "!! PostgreSQL is not installed (apt-get install postgresql)" >&2; ok=1; fi

if (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then :
elif command -v rabbitmq-server >/dev/null; then
  echo "starting RabbitMQ"
  rabbitmq-server -detached >/dev/null 2>&1
  rabbitmqctl await_startup >/dev/null 2>&1 || wait_for RabbitMQ 60 bash -c '(exec 3<>/dev/tcp/127.0.0.1/5672)' || ok=1
else echo "!! RabbitMQ is not installed (apt-get install rabbitmq-server)" >&2; ok=1; fi

# Tests make a vhost per test through the management API.
if command -v rabbitmq-plugins >/dev/null && ! (exec 3<>/dev/tcp/127.0.0.1/15672) 2>/dev/null; then
  rabbitmq-plugins enable rabbitmq_management >/dev/null 2>&1
  wait_for "RabbitMQ management" 60 bash -c '(exec 3<>/dev/tcp/127.0.0.1/15672)' || ok=1
fi

# The application database (tests make their own).
if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='duoyou'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE duoyou"
fi
exit $ok
