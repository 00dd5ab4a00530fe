/**
 * Building blocks of the config file schema: value types with their error messages. Every message
 * says what was expected; none echoes a string value (it may be a secret), only numbers and types.
 */
import { z } from "zod";
import {
  MAX_SIGNIFICANT_DIGITS,
  NANO_USD_DECIMALS,
  PRICE_PICO_DECIMALS,
  scaleDecimal,
} from "./decimal-units.js";

/** Largest delay Node timers accept; larger values silently fire after 1 ms (TimeoutOverflowWarning). */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * Describes a value for an error message without revealing strings; numbers and booleans are shown
 * unless `masked` (for secret fields, where even a number may be the secret).
 */
export function describeValue(value: unknown, masked = false): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  switch (typeof value) {
    case "string":
      return "a string";
    case "number":
    case "boolean":
      return masked ? `a ${typeof value}` : String(value);
    case "object":
      return "a mapping";
    default:
      return `a ${typeof value}`;
  }
}

/**
 * An error map that reports `required: expected <what>` for a missing value and
 * `expected <what>, got <value>` otherwise (the value only when it is not a string).
 */
export function expecting(what: string, masked = false): z.core.$ZodErrorMap {
  return (issue) => {
    if (issue.input === undefined) return `required: expected ${what}`;
    if (issue.code === "invalid_type" || typeof issue.input !== "string") {
      return `expected ${what}, got ${describeValue(issue.input, masked)}`;
    }
    return `expected ${what}`;
  };
}

/** A positive safe integer (tokens, counts). */
export function positiveInt(what = "a positive integer") {
  const error = expecting(what);
  return z.int({ error }).positive({ error });
}

/** A non-negative safe integer. */
export function nonNegativeInt(what = "an integer ≥ 0") {
  const error = expecting(what);
  return z.int({ error }).nonnegative({ error });
}

/** Milliseconds for a timer: 1 … 2^31−1 (Node's timer limit). */
export function timeoutMs() {
  const error = expecting(`a whole number of milliseconds from 1 to ${MAX_TIMER_MS}`);
  return z.int({ error }).min(1, { error }).max(MAX_TIMER_MS, { error });
}

/** Milliseconds of delay: 0 … 2^31−1. */
export function delayMs() {
  const error = expecting(`a whole number of milliseconds from 0 to ${MAX_TIMER_MS}`);
  return z.int({ error }).min(0, { error }).max(MAX_TIMER_MS, { error });
}

function decimalAmount(kind: "cap" | "price") {
  const decimals = kind === "cap" ? NANO_USD_DECIMALS : PRICE_PICO_DECIMALS;
  const what = kind === "cap" ? "a positive amount of USD" : "an amount of USD per 1M tokens (≥ 0)";
  const error = expecting(what);
  const base =
    kind === "cap" ? z.number({ error }).positive({ error }) : z.number({ error }).nonnegative({ error });
  return base.superRefine((value, ctx) => {
    const result = scaleDecimal(value, decimals);
    // Negative and non-finite values were already reported by the checks above.
    if (result.ok || result.reason === "negative" || result.reason === "not_finite") return;
    const message =
      result.reason === "too_precise"
        ? `expected at most ${decimals} decimal places (${kind === "cap" ? "nano-USD" : "pico-USD per token"} precision)`
        : result.reason === "too_many_digits"
          ? `expected at most ${MAX_SIGNIFICANT_DIGITS} significant digits (more cannot be read exactly)`
          : `expected ${what} small enough to count exactly in integers`;
    ctx.addIssue({ code: "custom", message, input: value });
  });
}

/** A USD amount for a cap or an alert threshold: positive, at most 9 decimals (exact in nano-USD). */
export function usdAmount() {
  return decimalAmount("cap");
}

/** A price in USD per 1M tokens: ≥ 0, at most 6 decimals (exact in pico-USD per token). */
export function usdPerMillionTokens() {
  return decimalAmount("price");
}

/** A fraction in (0, 1]. */
export function fraction() {
  const error = expecting("a fraction greater than 0 and at most 1");
  return z.number({ error }).gt(0, { error }).lte(1, { error });
}

// Why a leading letter: JavaScript enumerates integer-like keys ("1", "42") before all others, so a
// numeric upstream name would silently become the first — the default — upstream.
const NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
/** A key's user id (exported: keys created at run time follow the same rule as the config's). */
export const USER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$/;
const USER = USER_ID_PATTERN;
const MODEL = /^[A-Za-z0-9][\x21-\x7e]{0,199}$/;

/**
 * The name of a feature, tier or upstream (map keys). Why restricted: names travel in HTTP headers,
 * metric labels, log lines and Redis keys, where spaces, braces (Redis cluster hash tags), colons or
 * control characters would break or confuse them.
 */
export function entityName(kind: string) {
  const error = expecting(`a ${kind} name: 1-64 letters, digits, "_", "-" or ".", starting with a letter`);
  return z.string({ error }).regex(NAME, { error });
}

/** A reference to a named entity; existence is checked after parsing, with the list of valid names. */
export function nameRef(kind: string) {
  const error = expecting(`the name of a ${kind}`);
  return z.string({ error }).min(1, { error });
}

/** A user id (keys' `user`): no whitespace, ":" or "/", which separate namespaced end users. */
export function userId() {
  const error = expecting(
    'a user id: 1-128 letters, digits, "_", "-", ".", "@" or "+", starting with a letter or digit',
  );
  return z.string({ error }).regex(USER, { error });
}

/**
 * A file path: non-empty, at most 4096 characters, no NUL, no leading or trailing whitespace (a
 * stray newline from an environment variable would name another file). Whether the file can be
 * opened is checked when it is opened, at start.
 */
export function filePath() {
  const what = "a file path (1-4096 characters, no NUL, no leading or trailing whitespace)";
  const error = expecting(what);
  return z
    .string({ error })
    .min(1, { error })
    .max(4096, { error })
    .refine((s) => !s.includes("\u0000") && s.trim() === s, { error: `expected ${what}` });
}

/** A model name as the provider spells it (printable ASCII, no spaces). */
export function modelName() {
  const error = expecting(
    "a model name: 1-200 printable ASCII characters without spaces, starting with a letter or digit",
  );
  return z.string({ error }).regex(MODEL, { error });
}

/**
 * A secret (API key, token). Why the whitespace check: a trailing newline from a secrets file or an
 * `echo` is a classic cause of "invalid key" errors far from their origin.
 */
export function secret(minLength = 1) {
  const what = minLength > 1 ? `a secret of at least ${minLength} characters` : "a non-empty secret";
  const error = expecting(what, true);
  return z
    .string({ error })
    .min(minLength, { error })
    .refine((s) => s.trim() === s, {
      error: `expected ${what} without leading or trailing whitespace (a stray newline?)`,
    })
    .meta({ writeOnly: true });
}

function parseUrl(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

/** True for an absolute http(s) URL with a host. */
export function isHttpUrl(text: string): boolean {
  const url = parseUrl(text);
  return url !== undefined && (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== "";
}

/** True for a redis:// or rediss:// URL with a host and an optional numeric database path. */
export function isRedisUrl(text: string): boolean {
  const url = parseUrl(text);
  return (
    url !== undefined &&
    (url.protocol === "redis:" || url.protocol === "rediss:") &&
    url.hostname !== "" &&
    /^(\/\d*)?$/.test(url.pathname)
  );
}

/** An absolute http:// or https:// URL. */
export function httpUrl() {
  const error = expecting("an http:// or https:// URL");
  return z.string({ error }).refine(isHttpUrl, { error }).meta({ format: "uri", pattern: "^https?://" });
}

/** True when a URL carries a username or a password (`https://user:pass@host/…`). */
export function hasUrlCredentials(text: string): boolean {
  const url = parseUrl(text);
  return url !== undefined && (url.username !== "" || url.password !== "");
}

/**
 * An http:// or https:// webhook URL without a username or password. Why refused: `fetch` will not
 * send a request to such a URL, so every alert would fail, and its error message repeats the whole
 * URL, password included. The message never echoes the value.
 */
export function webhookUrl() {
  const error = expecting("an http:// or https:// URL");
  return z
    .string({ error })
    .refine(isHttpUrl, { error })
    .refine((text) => !hasUrlCredentials(text), {
      error:
        "a webhook URL must not contain a username or password (user:password@): put a token in the URL's path or query instead, or sign the body with the sink's `secret`",
    })
    .meta({ format: "uri", pattern: "^https?://" });
}

/** A redis:// or rediss:// URL (`orMemory`: the message also offers "memory", for the short form). */
export function redisUrl(orMemory = false) {
  const url = "a redis:// or rediss:// URL such as redis://127.0.0.1:6379/0";
  const error = expecting(orMemory ? `"memory" or ${url}` : url);
  return z.string({ error }).refine(isRedisUrl, { error }).meta({ format: "uri", pattern: "^rediss?://" });
}

/** True when `Intl` knows `zone` as an IANA time zone name (not a bare offset such as "+05:00"). */
export function isIanaTimeZone(zone: string): boolean {
  // Why the shape check first: newer ICU versions accept offset strings ("+05:00") as time zones,
  // but a fixed offset has no DST rules and is not what a "calendar day in a time zone" means.
  if (!/^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/.test(zone)) return false;
  try {
    new Intl.DateTimeFormat(undefined, { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** The canonical spelling of a valid IANA zone (`utc` → `UTC`, `US/Eastern` → `America/New_York`). */
export function canonicalTimeZone(zone: string): string {
  return new Intl.DateTimeFormat(undefined, { timeZone: zone }).resolvedOptions().timeZone;
}

/** An IANA time zone name such as `UTC` or `America/New_York`. */
export function ianaTimeZone() {
  const error = expecting('an IANA time zone name such as "UTC" or "America/New_York"');
  return z.string({ error }).refine(isIanaTimeZone, { error });
}

/** Keeps lists free of repeated entries (a repeated entry is nearly always a copy-paste slip). */
export function uniqueList<T extends z.ZodType>(item: T, what: string) {
  const error = expecting(`a list of ${what}`);
  return z.array(item, { error }).superRefine((list, ctx) => {
    const seen = new Map<unknown, number>();
    list.forEach((entry, index) => {
      const first = seen.get(entry);
      if (first === undefined) seen.set(entry, index);
      else
        ctx.addIssue({
          code: "custom",
          path: [index],
          message: `duplicate of entry [${first}]`,
          input: entry,
        });
    });
  });
}
