import { readFileSync } from "node:fs";
import type { ServerResponse } from "node:http";

/**
 * The dashboard (SPEC §7): a static page over the admin API, served at `/dashboard`. The page holds
 * no data; it asks for the admin token and calls `/admin/…` with it, like any other admin client.
 * Its files live in `assets/dashboard/` (plain HTML, CSS and an ES module; no build step).
 */
const FILES: Record<string, { file: string; type: string }> = {
  "/dashboard": { file: "index.html", type: "text/html; charset=utf-8" },
  "/dashboard/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/dashboard/app.css": { file: "app.css", type: "text/css; charset=utf-8" },
};

/** Scripts, styles and requests from this origin only; no framing, no inline code, no referrer. */
const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-cache",
};

const cache = new Map<string, Buffer>();

/** True for the dashboard's paths. */
export function isDashboardPath(path: string): boolean {
  return Object.hasOwn(FILES, path);
}

/** Serves one of the dashboard's files (read once, then kept). */
export function sendDashboard(res: ServerResponse, path: string): void {
  const f = FILES[path] as { file: string; type: string };
  let body = cache.get(f.file);
  if (!body) {
    body = readFileSync(new URL(`../../assets/dashboard/${f.file}`, import.meta.url));
    cache.set(f.file, body);
  }
  res.writeHead(200, { "content-type": f.type, "content-length": body.length, ...SECURITY_HEADERS });
  res.end(body);
}
