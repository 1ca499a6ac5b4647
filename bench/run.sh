#!/usr/bin/env bash
# Start bench/serve.py, wait for /healthz, run the load at concurrency 1 and 32 (closed loop)
# and at 300 tasks/s (open loop), then stop the server.
#   bench/run.sh [extra load.py arguments, e.g. --client httpx or --json]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PORT=${PORT:-18765}
TASKS=${TASKS:-5000}
URL="http://127.0.0.1:$PORT"

if curl -sf "$URL/healthz" >/dev/null 2>&1; then
  echo "something already answers on port $PORT; set PORT=" >&2
  exit 1
fi
"$PY" bench/serve.py --port "$PORT" ${SERVE_ARGS:-} &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true' EXIT

for _ in $(seq 100); do
  curl -sf "$URL/healthz" >/dev/null 2>&1 && break
  kill -0 "$SERVER" 2>/dev/null || { echo "server exited" >&2; exit 1; }
  sleep 0.1
done
curl -sf "$URL/healthz" >/dev/null || { echo "server not healthy after 10 s" >&2; exit 1; }
kill -0 "$SERVER" 2>/dev/null || { echo "bench/serve.py exited (port $PORT taken?)" >&2; exit 1; }

"$PY" bench/load.py --url "$URL" --mode wait --concurrency 1 --tasks 1000 "$@"
"$PY" bench/load.py --url "$URL" --mode wait --concurrency 32 --tasks "$TASKS" "$@"
"$PY" bench/load.py --url "$URL" --mode poll --concurrency 32 --tasks "$TASKS" "$@"
"$PY" bench/load.py --url "$URL" --mode wait --concurrency 32 --tasks "$TASKS" --rate 300 "$@"
