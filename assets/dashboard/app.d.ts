/** Types of the dashboard's module (app.js), for the tests that run it. */
export interface DashboardEnv {
  document: unknown;
  fetch(path: string, init?: RequestInit): Promise<Response>;
  storage: {
    getItem(k: string): string | null;
    setItem(k: string, v: string): void;
    removeItem(k: string): void;
  };
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(timer: unknown): void;
  confirm(question: string): boolean;
  now(): number;
}
export function formatUsd(nanoUsd: number): string;
export function formatInt(n: number): string;
export function hourWindowOf(ms: number): string;
export function summarize(
  rows: ReadonlyArray<{
    window: string;
    scope: string;
    requests: number;
    input_tokens: number;
    output_tokens: number;
    cost_nano_usd: number;
  }>,
  hour: string,
): {
  thisHour: Map<string, { requests: number; inputTokens: number; outputTokens: number; costNanoUsd: number }>;
  total: Map<string, { requests: number; inputTokens: number; outputTokens: number; costNanoUsd: number }>;
  hours: Array<{ window: string; requests: number; costNanoUsd: number }>;
};
export function startDashboard(env: DashboardEnv): {
  refresh(): Promise<void>;
  ready: Promise<void>;
  stop(): void;
};
