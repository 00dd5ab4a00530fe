import { Counter, collectDefaultMetrics, Histogram, Registry } from "prom-client";
import type { EngineEvents } from "../core/engine.js";
import { noUsageLogStats, type UsageLogStats } from "../usage-log/writer.js";
import { CounterCells } from "./counter-cells.js";

/** The gateway's Prometheus metrics (one registry per gateway, so tests can run several). */
export interface GatewayMetrics {
  readonly registry: Registry;
  readonly events: EngineEvents;
  upstreamLatency: Histogram<"upstream" | "status">;
  storeErrors: Counter<"op" | "mode">;
  estimatedSettlements: Counter<"feature" | "reason">;
  /** HTTP requests by route and status: `httpRequests.cell(route, status).inc()`. */
  httpRequests: CounterCells;
}

/** A counter the hot path increments through {@link CounterCells} (why: counter-cells.ts). */
function cellCounter(
  registry: Registry,
  config: { name: string; help: string; labelNames: readonly string[] },
): CounterCells {
  let cells: CounterCells | undefined;
  const counter = new Counter({
    ...config,
    registers: [registry],
    collect() {
      cells?.flush();
    },
  });
  cells = new CounterCells(counter, config.labelNames);
  return cells;
}

/**
 * Creates the metrics. Labels are bounded: feature names come from the config, codes from the error
 * table; user ids and keys are never labels (unbounded cardinality, and keys are secrets).
 */
export function createGatewayMetrics(): GatewayMetrics {
  const registry = new Registry();
  // Event-loop lag sampled every 100 ms, not prom-client's default 10 ms: an idle gateway then wakes
  // 10 times a second instead of 100 (measured with strace: ~190 epoll wake-ups a second idle before).
  collectDefaultMetrics({ register: registry, prefix: "tokenfuse_", eventLoopMonitoringPrecision: 100 });
  const decisions = cellCounter(registry, {
    name: "tokenfuse_decisions_total",
    help: "Admission decisions by feature, decision (allow|trim|reject), error code and store state (ok, or store_unavailable|local while the shared store is unreachable)",
    labelNames: ["feature", "decision", "code", "store"],
  });
  const tokens = cellCounter(registry, {
    name: "tokenfuse_tokens_total",
    help: "Tokens settled, by feature and direction (input|output)",
    labelNames: ["feature", "direction"],
  });
  const reserved = cellCounter(registry, {
    name: "tokenfuse_reserved_tokens_total",
    help: "Tokens reserved at admission, by feature",
    labelNames: ["feature"],
  });
  const settlements = cellCounter(registry, {
    name: "tokenfuse_settlements_total",
    help: "Settlements by feature and outcome (settled|expired|duplicate|deferred)",
    labelNames: ["feature", "status"],
  });
  const upstreamLatency = new Histogram({
    name: "tokenfuse_upstream_duration_seconds",
    help: "Time from sending a request upstream to its last byte, by upstream and status class",
    labelNames: ["upstream", "status"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [registry],
  });
  const storeErrors = new Counter({
    name: "tokenfuse_store_errors_total",
    help: "Budget store failures by operation and the on_error mode applied",
    labelNames: ["op", "mode"] as const,
    registers: [registry],
  });
  const estimatedSettlements = new Counter({
    name: "tokenfuse_estimated_settlements_total",
    help: "Settlements charged from an estimate because the upstream reported no usage",
    labelNames: ["feature", "reason"] as const,
    registers: [registry],
  });
  const httpRequests = cellCounter(registry, {
    name: "tokenfuse_http_requests_total",
    help: "HTTP requests by route and status",
    labelNames: ["route", "status"],
  });
  const events: EngineEvents = {
    decision(e) {
      // A refused unknown feature name comes from the caller: never a label (unbounded cardinality).
      const feature = e.code === "unknown_feature" || e.code === "invalid_request" ? "" : e.feature;
      decisions.cell(feature, e.decision, e.code ?? "", e.storeStatus ?? "ok").inc();
      if (e.reservedTokens) reserved.cell(e.feature).inc(e.reservedTokens);
    },
    settled(e) {
      settlements.cell(e.feature, e.status).inc();
      if (e.usage && e.status !== "duplicate") {
        tokens.cell(e.feature, "input").inc(e.usage.inputTokens);
        tokens.cell(e.feature, "output").inc(e.usage.outputTokens);
      }
    },
  };
  return { registry, events, upstreamLatency, storeErrors, estimatedSettlements, httpRequests };
}

/**
 * The usage log's counters, read from the log at scrape time (nothing on the request path):
 * lines written, failed writes, and lines lost by reason (`write_failed`, `buffer_full`, `after_close`, `error`).
 */
export function registerUsageLogMetrics(registry: Registry, stats: () => UsageLogStats | undefined): void {
  const seen = noUsageLogStats();
  /** Adds what `field` grew by since the last scrape. */
  const delta = (s: UsageLogStats, field: keyof UsageLogStats): number => {
    const d = s[field] - seen[field];
    seen[field] = s[field];
    return d;
  };
  new Counter({
    name: "tokenfuse_usage_log_lines_total",
    help: "Usage log lines handed to the OS",
    registers: [registry],
    collect() {
      const s = stats();
      if (s) this.inc(delta(s, "writtenLines"));
    },
  });
  new Counter({
    name: "tokenfuse_usage_log_write_errors_total",
    help: "Usage log writes that failed (disk full, file gone, broken pipe); each is logged once per episode",
    registers: [registry],
    collect() {
      const s = stats();
      if (s) this.inc(delta(s, "writeErrors"));
    },
  });
  new Counter({
    name: "tokenfuse_usage_log_dropped_lines_total",
    help: "Usage log lines lost, by reason: write_failed (with a failed write), buffer_full (the destination was slower than the traffic), after_close (arrived after the log was closed) or error (could not be formatted)",
    labelNames: ["reason"] as const,
    registers: [registry],
    collect() {
      const s = stats();
      if (!s) return;
      this.inc({ reason: "write_failed" }, delta(s, "failedLines"));
      this.inc({ reason: "buffer_full" }, delta(s, "droppedLines"));
      this.inc({ reason: "after_close" }, delta(s, "closedLines"));
      this.inc({ reason: "error" }, delta(s, "errorLines"));
    },
  });
}
