// Deterministic inputs for bench/tokenizer.bench.js (plain JS so the bench runs on the built code).

/** mulberry32: a seeded PRNG. */
export function createRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = (random, items) => items[Math.floor(random() * items.length)];

const WORDS = (
  "the of and to in is that for it as was with be by on not he this are or his from at which but have an they " +
  "you were her she there would their we him been has when who will more no if out so said what up its about into " +
  "than them can only other new some could time these two may then do first any my now such like our over budget " +
  "token provider request gateway reservation settlement conversation feature limit estimate international"
).split(" ");

/** English-like prose of about `chars` characters. */
export function prose(seed, chars) {
  const random = createRandom(seed);
  const out = [];
  let n = 0;
  while (n < chars) {
    const words = [];
    const count = 5 + Math.floor(random() * 18);
    for (let i = 0; i < count; i++) {
      let w = pick(random, WORDS);
      if (i === 0) w = w[0].toUpperCase() + w.slice(1);
      if (random() < 0.03) w = String(Math.floor(random() * 100000));
      words.push(w);
    }
    const s = `${words.join(" ")}${pick(random, [".", ".", "?", "!", ","])}${random() < 0.15 ? "\n\n" : " "}`;
    out.push(s);
    n += s.length;
  }
  return out.join("").slice(0, chars);
}

/** TypeScript-like code of about `chars` characters. */
export function code(seed, chars) {
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
  const lines = [];
  let n = 0;
  let depth = 0;
  while (n < chars) {
    const pad = "  ".repeat(depth);
    const a = pick(random, names);
    const b = pick(random, names);
    const r = random();
    let line;
    if (r < 0.15 && depth < 5) {
      line = `${pad}export function ${a}Of(${b}: number[], opts?: { limit: number }): number {`;
      depth++;
    } else if (r < 0.3 && depth > 0) {
      depth--;
      line = `${"  ".repeat(depth)}}`;
    } else if (r < 0.5) {
      line = `${pad}if (${a} >= ${Math.floor(random() * 1000)} && ${b}.length !== 0) ${a} += ${b}[${a} % 7] ?? 0;`;
    } else if (r < 0.6) {
      line = `${pad}// ${prose(Math.floor(random() * 1e9), 50).trim()}`;
    } else {
      line = `${pad}const ${a}List = ${b}.map((x) => x * ${(random() * 10).toFixed(2)}).filter(Boolean);`;
    }
    lines.push(line);
    n += line.length + 1;
  }
  return lines.join("\n").slice(0, chars);
}

const CJK =
  "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明";

/** Chinese-like text with CJK punctuation, about `chars` characters. */
export function cjk(seed, chars) {
  const random = createRandom(seed);
  let s = "";
  while (s.length < chars) {
    const n = 4 + Math.floor(random() * 20);
    for (let i = 0; i < n; i++) s += CJK[Math.floor(random() * CJK.length)];
    s += pick(random, ["。", "，", "、", "！", "？"]);
  }
  return s.slice(0, chars);
}

const EMOJI = [
  "😀",
  "😂",
  "👍",
  "🙏",
  "🔥",
  "🎉",
  "🚀",
  "❤️",
  "✅",
  "🤖",
  "👨‍👩‍👧‍👦",
  "👩🏽‍💻",
  "🏳️‍🌈",
  "🇫🇷",
  "🇯🇵",
];

/** Emoji-dense chat text of about `chars` UTF-16 units. */
export function emoji(seed, chars) {
  const random = createRandom(seed);
  let s = "";
  while (s.length < chars) s += random() < 0.6 ? pick(random, EMOJI) : ` ${pick(random, WORDS)} `;
  return s;
}

/** Unwrapped base64 of pseudo-random bytes, about `chars` characters. */
export function base64(seed, chars) {
  const random = createRandom(seed);
  const bytes = Buffer.alloc(Math.ceil((chars * 3) / 4));
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
  return bytes.toString("base64").slice(0, chars);
}

/** A mix of every kind above, about `chars` characters. */
export function mixed(seed, chars) {
  const random = createRandom(seed);
  const kinds = [prose, code, cjk, emoji, base64];
  let s = "";
  while (s.length < chars)
    s += `${pick(random, kinds)(Math.floor(random() * 1e9), 500 + Math.floor(random() * 3000))}\n`;
  return s.slice(0, chars);
}
