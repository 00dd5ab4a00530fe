/**
 * Runaway detection (SPEC §7): the unbounded-history bug does not trip a budget at first — each
 * request is "valid" — but its input grows request after request. This detector watches the input
 * sizes the engine admits and raises an alert while every request is still within its budgets.
 *
 * Two rules, both over integers and an injected clock:
 * - conversation: for one user + feature, the last `conversationRequests` requests each sent MORE
 *   messages and MORE input tokens than the one before, and the input grew by at least
 *   `growthFactor` over that run (a new, shorter conversation resets the run);
 * - feature: the feature's average input tokens per request, in windows of `windowMs`, rose in each
 *   of the last `featureWindows` windows and by at least `growthFactor` overall.
 * Each alert fires once per conversation run / per feature until the pattern breaks.
 */

/** What the detector is told about each admitted request. */
export interface RunawayObservation {
  atMs: number;
  user: string;
  feature: string;
  inputTokens: number;
  /** Messages the caller sent (before any trimming). */
  messageCount: number;
}

/** An alert raised by the detector. */
export interface RunawayAlert {
  kind: "conversation" | "feature";
  feature: string;
  user?: string;
  atMs: number;
  /** Input tokens per request over the run that triggered it, oldest first. */
  series: number[];
  message: string;
}

/** Parameters (documented in docs/alerts.md). */
export interface RunawayOptions {
  /** Consecutive growing requests of one conversation before alerting (default 5). */
  conversationRequests?: number;
  /** Minimum growth (last ÷ first) over the run, as a ratio (default 2). */
  growthFactor?: number;
  /** Window of the feature-level average (default 60 000 ms). */
  windowMs?: number;
  /** Consecutive rising windows before a feature alert (default 4). */
  featureWindows?: number;
  /** Conversations tracked at most (least recently seen are forgotten; default 100 000). */
  maxConversations?: number;
  onAlert: (alert: RunawayAlert) => void;
}

/** The detector. */
export interface RunawayDetector {
  observe(o: RunawayObservation): void;
}

interface ConversationState {
  messages: number;
  series: number[];
  alerted: boolean;
}

interface FeatureState {
  /** Closed windows' averages (tokens per request, rounded down), oldest first. */
  averages: number[];
  windowStart: number;
  sum: number;
  count: number;
  alerted: boolean;
}

/** Creates a runaway detector. */
export function createRunawayDetector(options: RunawayOptions): RunawayDetector {
  const runLength = options.conversationRequests ?? 5;
  const growth = options.growthFactor ?? 2;
  const windowMs = options.windowMs ?? 60_000;
  const featureWindows = options.featureWindows ?? 4;
  const maxConversations = options.maxConversations ?? 100_000;
  const conversations = new Map<string, ConversationState>();
  const features = new Map<string, FeatureState>();

  function rising(series: number[]): boolean {
    for (let i = 1; i < series.length; i++)
      if ((series[i] as number) <= (series[i - 1] as number)) return false;
    return true;
  }

  function grew(series: number[]): boolean {
    return rising(series) && (series.at(-1) as number) >= growth * (series[0] as number);
  }

  function observeConversation(o: RunawayObservation): void {
    const key = `${o.feature}\u0000${o.user}`;
    let c = conversations.get(key);
    if (c) conversations.delete(key); // re-insert: the map's order is least recently seen first
    if (!c) {
      c = { messages: o.messageCount, series: [o.inputTokens], alerted: false };
    } else if (o.messageCount <= c.messages) {
      // Not a continuation (a new conversation, or the history was cut): a new run from here.
      c.messages = o.messageCount;
      c.series.length = 0;
      c.series.push(o.inputTokens);
      c.alerted = false;
    } else {
      c.messages = o.messageCount;
      c.series.push(o.inputTokens);
      if (c.series.length > runLength) c.series.shift();
      if (!rising(c.series)) {
        // The growth stopped (e.g. trimmed): start a new run from here.
        c.series = [o.inputTokens];
        c.alerted = false;
      }
    }
    conversations.set(key, c);
    if (conversations.size > maxConversations) {
      const oldest = conversations.keys().next().value;
      if (oldest !== undefined) conversations.delete(oldest);
    }
    if (!c.alerted && c.series.length >= runLength && grew(c.series)) {
      c.alerted = true;
      options.onAlert({
        kind: "conversation",
        feature: o.feature,
        user: o.user,
        atMs: o.atMs,
        series: [...c.series],
        message: `conversation of user "${o.user}" on feature "${o.feature}" re-sends a growing history: input tokens ${c.series.join(" → ")} over ${c.series.length} requests`,
      });
    }
  }

  function observeFeature(o: RunawayObservation): void {
    const start = Math.floor(o.atMs / windowMs) * windowMs;
    let f = features.get(o.feature);
    if (!f) {
      f = { averages: [], windowStart: start, sum: 0, count: 0, alerted: false };
      features.set(o.feature, f);
    }
    if (start !== f.windowStart) {
      if (f.count > 0) f.averages.push(Math.floor(f.sum / f.count));
      // A window with no requests breaks the run.
      if (start - f.windowStart > windowMs) f.averages = [];
      if (f.averages.length > featureWindows) f.averages.shift();
      f.windowStart = start;
      f.sum = 0;
      f.count = 0;
      if (f.averages.length >= featureWindows && grew(f.averages)) {
        if (!f.alerted) {
          f.alerted = true;
          options.onAlert({
            kind: "feature",
            feature: o.feature,
            atMs: o.atMs,
            series: [...f.averages],
            message: `feature "${o.feature}": average input tokens per request rose in each of the last ${f.averages.length} windows: ${f.averages.join(" → ")}`,
          });
        }
      } else {
        f.alerted = false;
      }
    }
    f.sum += o.inputTokens;
    f.count++;
  }

  return {
    observe(o) {
      observeConversation(o);
      observeFeature(o);
    },
  };
}
