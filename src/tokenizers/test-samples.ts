/**
 * Deterministic text samples for the tokenizer tests: prose, code, JSON, CJK, emoji, base64,
 * whitespace runs and a large mixed document. Generated from a seeded PRNG so every run sees the
 * same text and no fixture file is needed. Test-only (excluded from the build).
 */

/** A small seeded PRNG (mulberry32); same seed, same sequence. */
export function createRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)] as T;
}

const WORDS = (
  "the of and to in is that for it as was with be by on not he this are or his from at which but have an " +
  "they you were her she there would their we him been has when who will more no if out so said what up its " +
  "about into than them can only other new some could time these two may then do first any my now such like " +
  "our over man me even most made after also did many before must through back years where much your way well " +
  "down should because each just those people how too little state good very make world still own see men work " +
  "long get here between both life being under never day same another know while last might us great old year " +
  "budget token provider request gateway reservation settlement conversation feature limit estimate tokenizer " +
  "international responsibility organization characteristics approximately unfortunately implementation"
).split(" ");

/** English-like prose with punctuation, capitals, numbers and paragraphs. */
export function proseSample(seed: number, approxChars: number): string {
  const random = createRandom(seed);
  const out: string[] = [];
  let length = 0;
  while (length < approxChars) {
    const words: string[] = [];
    const n = 5 + Math.floor(random() * 18);
    for (let i = 0; i < n; i++) {
      let w = pick(random, WORDS);
      if (i === 0) w = w.charAt(0).toUpperCase() + w.slice(1);
      if (random() < 0.03) w = String(Math.floor(random() * 100000));
      if (random() < 0.02) w = `"${w}"`;
      if (random() < 0.02) w = `${w}'s`;
      words.push(w);
      if (i < n - 1 && random() < 0.08) words.push(",");
    }
    const sentence = `${words.join(" ").replace(/ ,/g, ",")}${pick(random, [".", ".", ".", "?", "!", ";"])}`;
    out.push(sentence);
    length += sentence.length + 1;
    out.push(random() < 0.15 ? "\n\n" : " ");
  }
  return out.join("");
}

/** TypeScript-like code with indentation, operators, strings and comments. */
export function codeSample(seed: number, approxChars: number): string {
  const random = createRandom(seed);
  const names = [
    "value",
    "count",
    "index",
    "result",
    "buffer",
    "tokens",
    "limit",
    "items",
    "config",
    "error",
  ];
  const lines: string[] = [];
  let length = 0;
  let depth = 0;
  while (length < approxChars) {
    const indent = "  ".repeat(depth);
    const a = pick(random, names);
    const b = pick(random, names);
    const roll = random();
    let line: string;
    if (roll < 0.15 && depth < 6) {
      line = `${indent}export function ${a}${b.charAt(0).toUpperCase()}${b.slice(1)}(${a}: number, ${b}?: string[]): number {`;
      depth++;
    } else if (roll < 0.3 && depth > 0) {
      depth--;
      line = `${"  ".repeat(depth)}}`;
    } else if (roll < 0.45) {
      line = `${indent}if (${a} >= ${Math.floor(random() * 1000)} && ${b}.length !== 0) ${a} += ${b}[${a} % 7] ?? 0;`;
    } else if (roll < 0.55) {
      line = `${indent}// ${proseSample(Math.floor(random() * 1e9), 40).split("\n")[0]}`;
    } else if (roll < 0.65) {
      line = `${indent}const ${a}Map = new Map<string, number>([["${b}", 0x${Math.floor(random() * 65535).toString(16)}]]);`;
    } else {
      line = `${indent}${a} = ${b}.map((x) => x * ${(random() * 10).toFixed(2)}).filter(Boolean).join("\\t");`;
    }
    lines.push(line);
    length += line.length + 1;
  }
  return lines.join("\n");
}

/** Pretty-printed JSON with nested objects, arrays, numbers, booleans and escaped strings. */
export function jsonSample(seed: number, approxChars: number): string {
  const random = createRandom(seed);
  const items: unknown[] = [];
  let length = 0;
  while (length < approxChars) {
    const item = {
      id: `req_${Math.floor(random() * 1e12).toString(36)}`,
      user: pick(random, ["alice", "bob", "carol", "dave"]),
      tokens: Math.floor(random() * 50000),
      ratio: Math.round(random() * 1e6) / 1e6,
      ok: random() < 0.8,
      tags: [pick(random, WORDS), pick(random, WORDS)],
      note: proseSample(Math.floor(random() * 1e9), 60).split("\n")[0],
      nested: { depth: 2, path: "/v1/chat/completions", empty: null },
    };
    items.push(item);
    length += JSON.stringify(item).length * 1.6;
  }
  return JSON.stringify({ data: items }, null, 2);
}

const CJK_COMMON =
  "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明";
const KANA =
  "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをんアイウエオカキクケコサシスセソタチツテト";

/** Chinese/Japanese-like text: common ideographs and kana with CJK punctuation. */
export function cjkSample(seed: number, approxChars: number): string {
  const random = createRandom(seed);
  const out: string[] = [];
  let length = 0;
  while (length < approxChars) {
    const n = 4 + Math.floor(random() * 20);
    let sentence = "";
    for (let i = 0; i < n; i++)
      sentence += random() < 0.75 ? pick(random, [...CJK_COMMON]) : pick(random, [...KANA]);
    sentence += pick(random, ["。", "，", "、", "！", "？", "「", "」"]);
    out.push(sentence);
    length += sentence.length;
    if (random() < 0.1) out.push("\n");
  }
  return out.join("");
}

const EMOJI = [
  "😀",
  "😂",
  "🥲",
  "👍",
  "🙏",
  "🔥",
  "🎉",
  "🚀",
  "❤️",
  "✅",
  "⚠️",
  "🤖",
  "🧠",
  "📈",
  "🍕",
  "👨‍👩‍👧‍👦",
  "👩🏽‍💻",
  "🏳️‍🌈",
  "🧑🏿‍🚀",
  "👍🏻",
  "🇫🇷",
  "🇯🇵",
  "🇺🇸",
  "🇧🇷",
  "1️⃣",
  "#️⃣",
];

/** Chat-style text dense in emoji: modifiers, ZWJ families, flags, keycaps, between short words. */
export function emojiSample(seed: number, approxChars: number): string {
  const random = createRandom(seed);
  const out: string[] = [];
  let length = 0;
  while (length < approxChars) {
    const part =
      random() < 0.5
        ? pick(random, EMOJI)
        : random() < 0.5
          ? ` ${pick(random, WORDS)} `
          : pick(random, EMOJI).repeat(3);
    out.push(part);
    length += part.length;
  }
  return out.join("");
}

/** Base64 of pseudo-random bytes, wrapped at 76 columns like MIME, or unwrapped. */
export function base64Sample(seed: number, bytes: number, wrap = true): string {
  const random = createRandom(seed);
  const data = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) data[i] = Math.floor(random() * 256);
  const b64 = data.toString("base64");
  if (!wrap) return b64;
  return b64.replace(/.{76}/g, "$&\n");
}

/** Mixed whitespace: runs of spaces, tabs, newlines, CRLF and NBSP, some words between. */
export function whitespaceSample(seed: number, approxChars: number): string {
  const random = createRandom(seed);
  const out: string[] = [];
  let length = 0;
  while (length < approxChars) {
    const ws = pick(random, [
      " ",
      "\t",
      "\n",
      "\r\n",
      "  ",
      "\u00a0",
      "\u3000",
      "\u2003",
      "\u0085",
      "\ufeff",
    ]);
    const part = random() < 0.2 ? pick(random, WORDS) : ws.repeat(1 + Math.floor(random() * 40));
    out.push(part);
    length += part.length;
  }
  return out.join("");
}

/** A large document mixing every sample kind, in deterministic blocks. */
export function mixedDocument(seed: number, approxChars: number): string {
  const random = createRandom(seed);
  const blocks: string[] = [];
  let length = 0;
  while (length < approxChars) {
    const s = Math.floor(random() * 1e9);
    const size = 200 + Math.floor(random() * 3000);
    const block = pick(random, [
      () => proseSample(s, size),
      () => codeSample(s, size),
      () => jsonSample(s, size),
      () => cjkSample(s, size / 2),
      () => emojiSample(s, size / 4),
      () => base64Sample(s, size),
      () => whitespaceSample(s, size / 4),
      () => pick(random, ["a", " ", "-", "=", "\n", "中", "😀"]).repeat(size),
    ])();
    blocks.push(block);
    length += block.length;
  }
  return blocks.join("\n");
}
