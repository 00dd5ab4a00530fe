// Tokenizer benchmark: tokenfuse's counter vs js-tiktoken vs tiktoken (WASM), on the BUILT code.
//
//   npx tsc -p tsconfig.build.json && node bench/tokenizer.bench.js [--quick]
//
// Prints a results table (Markdown). Each timing is the median of several runs after a warm-up,
// in one process, so the ratios between libraries are what to read (2-core machines are noisy).
// --quick skips the slow quadratic runs of the other libraries.

import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";
import { base64, cjk, code, emoji, mixed, prose } from "./tokenizer-samples.js";

const require = createRequire(import.meta.url);
const quick = process.argv.includes("--quick");
const MIB = 1 << 20;

let tokenizers;
try {
  tokenizers = await import("../dist/tokenizers/index.js");
} catch (error) {
  console.error("dist/ is missing or stale: run `npx tsc -p tsconfig.build.json` first.\n", error.message);
  process.exit(2);
}
const {
  getChatTokenizer,
  getTextTokenizer,
  createChatTokenizer,
  createTokenCountCache,
  O200K_CHAT_FORMAT,
  rankLoadTimings,
} = tokenizers;

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Median wall time (ms) of `fn` over `runs` runs after one warm-up. */
function time(fn, runs = 5) {
  fn();
  const samples = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    samples.push(performance.now() - t0);
  }
  return median(samples);
}

function once(fn) {
  const t0 = performance.now();
  const result = fn();
  return { ms: performance.now() - t0, result };
}

const fmt = (ms) => (ms >= 100 ? ms.toFixed(0) : ms >= 1 ? ms.toFixed(1) : ms.toFixed(3));
const mbps = (bytes, ms) => {
  const rate = bytes / MIB / (ms / 1000);
  return rate >= 1 ? rate.toFixed(2) : rate.toPrecision(2);
};

const lines = [];
const print = (line = "") => {
  lines.push(line);
  console.log(line);
};

// 1. Load time of each encoding (first use in this process).
print("## Load time (first use, this process)");
print();
print("| library | o200k_base ms | cl100k_base ms |");
print("|---|---:|---:|");
const ourLoad = {};
for (const encoding of ["o200k_base", "cl100k_base"]) {
  ourLoad[encoding] = once(() => getTextTokenizer(encoding).countText("warm up")).ms;
}
const timings = Object.fromEntries(rankLoadTimings().map((t) => [t.encoding, t]));
print(
  `| tokenfuse (require + build) | ${fmt(ourLoad.o200k_base)} (${fmt(timings.o200k_base.requireMs)} + ${fmt(timings.o200k_base.buildMs)}) | ${fmt(ourLoad.cl100k_base)} (${fmt(timings.cl100k_base.requireMs)} + ${fmt(timings.cl100k_base.buildMs)}) |`,
);
const { getEncoding } = await import("js-tiktoken");
const js = {};
const jsLoad = {};
for (const encoding of ["o200k_base", "cl100k_base"]) {
  const r = once(() => {
    const e = getEncoding(encoding);
    e.encode("warm up");
    return e;
  });
  js[encoding] = r.result;
  jsLoad[encoding] = r.ms;
}
print(`| js-tiktoken | ${fmt(jsLoad.o200k_base)} | ${fmt(jsLoad.cl100k_base)} |`);
const { get_encoding } = require("tiktoken");
const wasm = {};
const wasmLoad = {};
for (const encoding of ["o200k_base", "cl100k_base"]) {
  const r = once(() => {
    const e = get_encoding(encoding);
    e.encode_ordinary("warm up");
    return e;
  });
  wasm[encoding] = r.result;
  wasmLoad[encoding] = r.ms;
}
print(`| tiktoken (WASM) | ${fmt(wasmLoad.o200k_base)} | ${fmt(wasmLoad.cl100k_base)} |`);
print();

// 2. Throughput.
print("## Counting throughput (MB/s of UTF-8, higher is better)");
print();
print(
  "| input | encoding | tokenfuse | js-tiktoken | tiktoken WASM | tokenfuse / js-tiktoken (MB/s ratio) | tokenfuse / WASM |",
);
print("|---|---|---:|---:|---:|---:|---:|");
// Repeated runs are one pre-tokenized piece, where the other libraries are quadratic (or worse):
// tiktoken WASM is timed once on the full run, js-tiktoken on a 5 000-character run only
// (it takes ~18 s on 10 000 "a"s here), both reported as MB/s of what they processed.
const JS_RUN_CHARS = 5_000;
const inputs = [
  ["prose 1 MB", prose(1, MIB), 3],
  ["code 1 MB", code(2, MIB), 3],
  ["CJK 300 k chars", cjk(3, 300_000), 3],
  ["emoji 200 k units", emoji(4, 200_000), 3],
  ["base64 1 MB", base64(5, MIB), 3],
  ["100 000 × 'a'", "a".repeat(100_000), quick ? 0 : 1],
  ["100 000 spaces", " ".repeat(100_000), quick ? 0 : 1],
];
for (const [name, text, otherRuns] of inputs) {
  const bytes = Buffer.byteLength(text);
  for (const encoding of ["o200k_base", "cl100k_base"]) {
    const ours = getTextTokenizer(encoding);
    let jsMs = Number.NaN;
    let wasmMs = Number.NaN;
    let jsBytes = bytes;
    if (otherRuns === 1) {
      const w = once(() => wasm[encoding].encode_ordinary(text).length);
      wasmMs = w.ms;
      if (ours.countText(text) !== w.result) throw new Error(`count mismatch on ${name} (${encoding})`);
      const short = text.slice(0, JS_RUN_CHARS);
      jsBytes = Buffer.byteLength(short);
      jsMs = once(() => js[encoding].encode(short).length).ms;
    } else {
      if (ours.countText(text) !== wasm[encoding].encode_ordinary(text).length) {
        throw new Error(`count mismatch on ${name} (${encoding})`);
      }
      if (otherRuns > 0) {
        jsMs = time(() => js[encoding].encode(text).length, otherRuns);
        wasmMs = time(() => wasm[encoding].encode_ordinary(text).length, otherRuns);
      }
    }
    const oursMs = time(() => ours.countText(text), 5);
    const speedup = (otherBytes, ms) =>
      Number.isNaN(ms) ? "—" : `${(bytes / oursMs / (otherBytes / ms)).toFixed(1)}×`;
    const rate = (otherBytes, ms) =>
      Number.isNaN(ms)
        ? "(skipped)"
        : `${mbps(otherBytes, ms)} (${fmt(ms)} ms${otherBytes !== bytes ? ` on ${JS_RUN_CHARS} chars` : ""})`;
    print(
      `| ${name} | ${encoding} | ${mbps(bytes, oursMs)} (${fmt(oursMs)} ms) | ${rate(jsBytes, jsMs)} | ${rate(bytes, wasmMs)} | ${speedup(jsBytes, jsMs)} | ${speedup(bytes, wasmMs)} |`,
    );
  }
}
print();

// 3. Bounded decisions on 1 MiB messages.
print("## 1 MiB message vs a 4 000-token cap (o200k_base / cl100k_base, ms)");
print();
print(
  "| content | countTextUpTo o200k | truncateText o200k | countTextUpTo cl100k | truncateText cl100k | js-tiktoken full count o200k |",
);
print("|---|---:|---:|---:|---:|---:|");
const big = [
  ["100 % 'a'", "a".repeat(MIB)],
  ["100 % spaces", " ".repeat(MIB)],
  ["100 % '-'", "-".repeat(MIB)],
  ["base64", base64(6, MIB)],
  ["CJK", cjk(7, MIB)],
  [
    "CJK, no punctuation",
    Array.from({ length: MIB }, (_, i) => "的一是不了人我在有他这中大来上国"[(i * 7) % 16]).join(""),
  ],
  ["emoji", emoji(8, MIB)],
  ["prose", prose(9, MIB)],
  ["mixed", mixed(10, MIB)],
];
for (const [name, text] of big) {
  const row = [];
  for (const encoding of ["o200k_base", "cl100k_base"]) {
    const ours = getTextTokenizer(encoding);
    if (ours.countTextUpTo(text, 4000) !== 4001) throw new Error(`${name} should exceed 4000`);
    row.push(fmt(time(() => ours.countTextUpTo(text, 4000), 7)));
    const cut = ours.truncateText(text, 4000);
    if (ours.countText(cut) > 4000) throw new Error(`${name} truncation does not fit`);
    row.push(`${fmt(time(() => ours.truncateText(text, 4000), 7))} (${ours.countText(cut)} tok)`);
  }
  // Only where js-tiktoken finishes in seconds: it is quadratic or worse on long pieces.
  const full =
    quick || !["base64", "prose", "mixed"].includes(name)
      ? "(skipped)"
      : fmt(once(() => js.o200k_base.encode(text).length).ms);
  print(`| ${name} | ${row.join(" | ")} | ${full} |`);
}
print();

// 3b. The worst case left: one long piece whose lower bound does not exceed the cap must be merged
// to be counted exactly (300 000 spaces are exactly 2 344 tokens, under a 4 000 cap). A long CJK
// run is shown for contrast: its bound already exceeds the cap.
print("## Long single pieces under 1 MiB (countTextUpTo, cap 4 000, ms)");
print();
print("| content | o200k_base | cl100k_base |");
print("|---|---:|---:|");
for (const [name, text] of [
  ["300 000 spaces", " ".repeat(300_000)],
  ["300 000 × '-'", "-".repeat(300_000)],
  ["100 000 CJK chars, no punctuation", big[5][1].slice(0, 100_000)],
]) {
  const row = ["o200k_base", "cl100k_base"].map((encoding) =>
    fmt(time(() => getTextTokenizer(encoding).countTextUpTo(text, 4000), 5)),
  );
  print(`| ${name} | ${row.join(" | ")} |`);
}
print();

// 4. Conversation counting with the per-message cache.
print("## 200-turn conversation (o200k_base)");
print();
const turns = [{ role: "system", content: prose(11, 2_000) }];
for (let i = 0; i < 200; i++) {
  turns.push({
    role: i % 2 === 0 ? "user" : "assistant",
    content: i % 5 === 0 ? code(100 + i, 1_500) : prose(100 + i, 1_200),
  });
}
const next = {
  role: "user",
  content: "Thanks. One more question: how many tokens is this conversation now?",
};
const text = getTextTokenizer("o200k_base");
const scratchMs = time(() => {
  const fresh = createChatTokenizer({ text, format: O200K_CHAT_FORMAT, cache: createTokenCountCache() });
  fresh.countChat(turns);
}, 7);
const warmCache = createTokenCountCache();
const cached = createChatTokenizer({ text, format: O200K_CHAT_FORMAT, cache: warmCache });
const total = cached.countChat(turns);
const recountMs = time(() => cached.countChat([...turns, next]), 21);
// A gateway parses every request anew: the same texts arrive as new strings whose hashes V8 has
// not computed yet. Time that too, on copies parsed before the clock starts.
const copies = Array.from({ length: 15 }, () => JSON.parse(JSON.stringify([...turns, next])));
const parsedMs = median(copies.map((copy) => once(() => cached.countChat(copy)).ms));
const chars = turns.reduce((n, m) => n + m.content.length, 0);
print("| what | ms |");
print("|---|---:|");
print(
  `| count ${turns.length} messages (${(chars / 1000).toFixed(0)} k chars, ${total} tokens) from scratch | ${fmt(scratchMs)} |`,
);
print(`| recount after adding one message (cache warm, same message objects) | ${fmt(recountMs)} |`);
print(`| same, on a freshly parsed copy of the request (JSON.parse not timed) | ${fmt(parsedMs)} |`);
print(
  `| speed-up (same objects / freshly parsed) | ${(scratchMs / recountMs).toFixed(0)}× / ${(scratchMs / parsedMs).toFixed(0)}× |`,
);
print();
print(
  `Node ${process.version}, ${process.platform}/${process.arch}; shared chat tokenizer check: ${getChatTokenizer("o200k_base").countChat([next])} tokens.`,
);

for (const e of Object.values(wasm)) e.free();
