// A baseline for bench/gateway.bench.js, not a product: the least an OpenAI-compatible proxy in Node
// does per request — node:http in, parse the JSON body, count the input tokens (tokenfuse's own
// tokenizer, cached like the gateway's), forward with undici, read the whole answer, parse it for
// `usage`, send it back. No budgets, no keys, no metrics, no logs, no error envelopes.
// It tells what part of the gateway's cost is the HTTP hop itself, on this machine, in the same run.
// Run: node bench/bare-proxy.js <upstream origin>   (prints "bare proxy on http://127.0.0.1:<port>")
import { createServer } from "node:http";
import { Pool } from "undici";
import { tokenizerForModel } from "../dist/tokenizers/index.js";

const upstream = process.argv[2];
if (!upstream) {
  console.error("usage: node bench/bare-proxy.js <upstream origin>");
  process.exit(2);
}
const pool = new Pool(upstream, { connections: 128 });
let inputTokens = 0;
let outputTokens = 0;

const server = createServer(async (req, res) => {
  try {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    inputTokens += tokenizerForModel(body.model).countChat(body.messages);
    const up = await pool.request({
      path: "/v1/chat/completions",
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const text = await up.body.text();
    outputTokens += JSON.parse(text).usage?.completion_tokens ?? 0;
    res.writeHead(up.statusCode, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(text),
    });
    res.end(text);
  } catch (e) {
    res.writeHead(502, { "content-type": "text/plain" });
    res.end(String(e));
  }
});
server.listen(0, "127.0.0.1", () => {
  console.log(`bare proxy on http://127.0.0.1:${server.address().port}`);
});
process.on("SIGTERM", () => {
  console.error(`bare proxy counted ${inputTokens} input and ${outputTokens} output tokens`);
  process.exit(0);
});
