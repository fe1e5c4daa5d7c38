// A small client for `memabra serve` using the standard fetch API (Node 18+, Deno, Bun, browsers).
//   MEMABRA_API_TOKEN=... memabra serve --base-dir artifacts --port 8765
//   MEMABRA_API_TOKEN=... npx tsx examples/http/client.ts
// The trajectory schema is docs/trajectory-schema.md; the endpoints are docs/http.md.

export type CandidateKind = "memory" | "skill" | "tool" | "episodic" | "direct" | "clarify";

export interface Task { task_id: string; text: string; metadata?: Record<string, unknown> }

export interface Candidate {
  candidate_id: string;
  kind: CandidateKind;
  name?: string;
  score?: number;
  payload?: Record<string, unknown>;
}

export interface Decision {
  chosen_candidate_id: string;
  scores: Record<string, number>;
  propensity: number | null;
  router_version_id: string | null;
  policy: string;
}

export interface Outcome { reward: number; latency_ms: number; error?: string | null }

export interface Trajectory {
  trajectory_id?: string;
  task: Task;
  candidates: Candidate[];
  decision: Decision;
  outcome: Outcome;
}

export interface IngestAnswer {
  line_count: number;
  stored_count: number;
  duplicate_count: number;
  invalid_count: number;
  invalid: { line: number; field: string; error: string }[];
  invalid_truncated: boolean;
}

export class MemabraError extends Error {
  constructor(readonly status: number, message: string) { super(`memabra answered ${status}: ${message}`); }
}

export class MemabraClient {
  constructor(readonly url: string, private readonly token?: string, private readonly timeoutMs = 10_000) {}

  private async call<T>(path: string, init: RequestInit = {}): Promise<T> {
    const response = await fetch(this.url + path, { ...init, signal: AbortSignal.timeout(this.timeoutMs) });
    const body = await response.json();
    if (!response.ok) throw new MemabraError(response.status, body.error ?? JSON.stringify(body));
    return body as T;
  }

  /** The active router's choice among the candidates (a promotion is served within a second). */
  route(task: Task, candidates: Candidate[]): Promise<Decision> {
    return this.call("/v1/route", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ task, candidates }),
    });
  }

  /** Store trajectories (one JSON line each); ids already stored are skipped, so retrying is safe. */
  log(trajectories: Trajectory[]): Promise<IngestAnswer> {
    if (!this.token) throw new Error("logging needs the server's MEMABRA_API_TOKEN");
    return this.call("/v1/trajectories", {
      method: "POST",
      headers: { Authorization: `Bearer ${this.token}`, "Content-Type": "application/x-ndjson" },
      body: trajectories.map((trajectory) => JSON.stringify(trajectory)).join("\n") + "\n",
    });
  }

  /** The same document as `python -m memabra.cli --status`. */
  status(): Promise<Record<string, unknown>> {
    return this.call("/v1/status");
  }
}

async function example(): Promise<void> {
  const client = new MemabraClient(process.env.MEMABRA_URL ?? "http://127.0.0.1:8765", process.env.MEMABRA_API_TOKEN);
  const task: Task = { task_id: "ticket-42", text: "When was the last invoice sent to ACME?" };
  const candidates: Candidate[] = [
    { candidate_id: "crm-memory", kind: "memory", name: "CRM notes", score: 0.71 },
    { candidate_id: "billing-api", kind: "tool", name: "billing lookup", score: 0.64 },
    { candidate_id: "ask-user", kind: "clarify", score: 0.05 },
  ];
  const decision = await client.route(task, candidates);
  console.log("use", decision.chosen_candidate_id, "with propensity", decision.propensity);

  const started = Date.now();
  const reward = 1.0; // what running decision.chosen_candidate_id earned
  const answer = await client.log([{
    trajectory_id: `ticket-42-${crypto.randomUUID()}`,
    task, candidates, decision,
    outcome: { reward, latency_ms: Date.now() - started },
  }]);
  console.log(`stored ${answer.stored_count}, skipped ${answer.duplicate_count}, refused ${answer.invalid_count}`);
  console.log("active router:", (await client.status()).active_router);
}

example().catch((error) => { console.error(String(error)); process.exit(1); });
