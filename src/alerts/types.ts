/** An alert, as every sink receives it. */
export interface Alert {
  /** What kind of alert (e.g. `runaway_conversation`, `hourly_cost`, `daily_budget`). */
  kind: string;
  /** The scope it is about, e.g. `feature:chat` or `user:alice`. */
  scope: string;
  /** One human-readable line (also the Slack `text`). */
  message: string;
  atMs: number;
  /** Structured details (numbers, series); never secrets. */
  details?: Record<string, unknown>;
}

/** Where alerts go (`log`, `webhook`, or a plugin). */
export interface AlertSink {
  readonly name: string;
  /** Delivers one alert; rejects on failure. Must give up when `signal` aborts. */
  send(alert: Alert, signal: AbortSignal): Promise<void>;
}
