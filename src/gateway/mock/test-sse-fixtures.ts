/**
 * Test helper: loads the recorded-style OpenAI SSE streams in test/fixtures/sse. Each fixture is a
 * `<name>.txt` stream exactly as OpenAI sends it and the `<name>.request.json` body it answers, so a
 * test can replay the stream and compare the usage it reports with the request's own count.
 */

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseSse, type SseEvent } from "./test-sse-parse.js";

/** The fixtures: with usage, without usage, a tool-call delta, and `n: 2` with usage. */
export const SSE_FIXTURE_NAMES = ["usage", "no-usage", "tool-call", "n2"] as const;

/** A fixture's name. */
export type SseFixtureName = (typeof SSE_FIXTURE_NAMES)[number];

/** A loaded fixture. */
export interface SseFixture {
  name: SseFixtureName;
  /** The stream, byte for byte. */
  text: string;
  /** Its events, in order (the last one's data is `[DONE]`). */
  events: SseEvent[];
  /** The wire chunks, one per event, each ending with its blank line: what a replaying server writes. */
  wireChunks: string[];
  /** The request body the stream answers. */
  request: Record<string, unknown>;
}

const FIXTURE_DIR = fileURLToPath(new URL("../../../test/fixtures/sse/", import.meta.url));

/** Loads fixture `name` (synchronously; the files are small). */
export function loadSseFixture(name: SseFixtureName): SseFixture {
  const text = readFileSync(`${FIXTURE_DIR}${name}.txt`, "utf8");
  const request = JSON.parse(readFileSync(`${FIXTURE_DIR}${name}.request.json`, "utf8")) as Record<
    string,
    unknown
  >;
  const wireChunks = text
    .split("\n\n")
    .filter((c) => c !== "")
    .map((c) => `${c}\n\n`);
  return { name, text, events: parseSse(text), wireChunks, request };
}
