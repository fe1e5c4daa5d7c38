#!/usr/bin/env sh
# Talk to `memabra serve` with curl: ask the active router, log what happened, read the status.
#   MEMABRA_API_TOKEN=... memabra serve --base-dir artifacts --port 8765   (in another terminal)
#   MEMABRA_API_TOKEN=... sh examples/http/route.sh
set -eu
URL="${MEMABRA_URL:-http://127.0.0.1:8765}"
: "${MEMABRA_API_TOKEN:?set MEMABRA_API_TOKEN to the token the server was started with}"

TASK='{"task_id": "ticket-42", "text": "When was the last invoice sent to ACME?"}'
CANDIDATES='[{"candidate_id": "crm-memory", "kind": "memory", "name": "CRM notes", "score": 0.71},
             {"candidate_id": "billing-api", "kind": "tool", "name": "billing lookup", "score": 0.64},
             {"candidate_id": "ask-user", "kind": "clarify", "score": 0.05}]'

# 1. Which candidate should the agent use? (no token needed to route)
DECISION=$(curl -sS --fail-with-body -X POST "$URL/v1/route" -H 'Content-Type: application/json' \
  -d "{\"task\": $TASK, \"candidates\": $CANDIDATES}")
echo "decision: $DECISION"

# 2. The agent runs the chosen candidate, then logs the run: one trajectory per line (JSON Lines).
#    Give each run its own trajectory_id, so retrying the same post stores nothing twice.
TRAJECTORY=$(printf '{"trajectory_id": "ticket-42-run-1", "task": %s, "candidates": %s, "decision": %s, "outcome": {"reward": 1.0, "latency_ms": 830}}' \
  "$TASK" "$(echo "$CANDIDATES" | tr -d '\n')" "$DECISION")
echo "$TRAJECTORY" | curl -sS --fail-with-body -X POST "$URL/v1/trajectories" \
  -H "Authorization: Bearer $MEMABRA_API_TOKEN" -H 'Content-Type: application/x-ndjson' --data-binary @-
echo

# 3. What the store holds now (the same document as `python -m memabra.cli --status`).
curl -sS --fail-with-body "$URL/v1/status"
echo
