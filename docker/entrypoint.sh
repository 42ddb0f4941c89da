#!/bin/sh
# The container's entry point (also runnable as a plain process, which is how CI tests it).
#
#   entrypoint.sh [serve] [serve options]  migrate the ledger (unless
#                                          SMARTSPACE_BUDGET_MIGRATE=false), then serve
#   entrypoint.sh migrate                  bring the ledger schema up to date and exit
#   entrypoint.sh healthcheck              exit 0 when /readyz answers 200 (HEALTHCHECK)
#   entrypoint.sh <any other command>      smartspace-budget <command> ...
#
# Migrating is safe from every replica at once: on PostgreSQL `migrate` holds an advisory
# lock around the upgrade, so one replica migrates and the others wait and find it done.
# compose.yaml still runs it once, as its own service, before the replicas start.
set -eu

command="${1:-serve}"
[ "$#" -gt 0 ] && shift

case "$command" in
  serve)
    if [ "${SMARTSPACE_BUDGET_MIGRATE:-true}" != "false" ]; then
      smartspace-budget migrate
    fi
    exec smartspace-budget serve "$@"
    ;;
  migrate)
    exec smartspace-budget migrate "$@"
    ;;
  healthcheck)
    port="${SMARTSPACE_BUDGET_PORT:-8000}"
    exec python - "http://127.0.0.1:${port}/readyz" <<'PY'
import sys
import urllib.request

try:
    with urllib.request.urlopen(sys.argv[1], timeout=3) as answer:
        sys.exit(0 if answer.status == 200 else 1)
except OSError as exc:  # refused, timed out, or an HTTP error status (503 not ready)
    print(f"not ready: {exc}", file=sys.stderr)
    sys.exit(1)
PY
    ;;
  *)
    exec smartspace-budget "$command" "$@"
    ;;
esac
