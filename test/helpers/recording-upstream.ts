import { once } from "node:events";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { pipeline, Readable } from "node:stream";

/** One request as it reached the recording upstream over HTTP. */
export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body (undefined when it was not JSON). */
  body: Record<string, unknown> | undefined;
}

/** An answer the recording upstream gives itself instead of forwarding. */
export interface CannedAnswer {
  status: number;
  headers?: Record<string, string>;
  body: string;
}

export interface RecordingUpstream {
  /** Origin, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** Every request received, oldest first. */
  readonly requests: RecordedRequest[];
  close(): Promise<void>;
}

/**
 * A loopback HTTP server in front of an upstream (the mock server): it records each request's
 * method, path, headers and JSON body as they arrive on the wire, then forwards the request to
 * `target` + path and streams the answer back unchanged. `answer` may reply instead (say a 401).
 */
export async function startRecordingUpstream(
  target: string,
  answer?: (req: RecordedRequest) => CannedAnswer | undefined,
): Promise<RecordingUpstream> {
  const requests: RecordedRequest[] = [];
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString("utf8");
    let body: Record<string, unknown> | undefined;
    try {
      body = JSON.parse(raw);
    } catch {
      body = undefined;
    }
    const rec: RecordedRequest = {
      method: req.method ?? "",
      path: req.url ?? "",
      headers: req.headers,
      body,
    };
    requests.push(rec);
    const canned = answer?.(rec);
    if (canned) {
      res.writeHead(canned.status, { "content-type": "application/json", ...canned.headers });
      res.end(canned.body);
      return;
    }
    const forwarded: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (typeof v === "string" && !["host", "content-length", "connection"].includes(k)) forwarded[k] = v;
    }
    try {
      const up = await fetch(`${target}${req.url ?? ""}`, {
        method: req.method,
        headers: forwarded,
        body: raw === "" ? undefined : raw,
      });
      const headers: Record<string, string> = {};
      up.headers.forEach((v, k) => {
        if (k !== "content-length" && k !== "transfer-encoding" && k !== "connection") headers[k] = v;
      });
      res.writeHead(up.status, headers);
      // A broken upstream stream (a reset mid-stream) breaks this answer too, as a proxy would.
      if (up.body)
        pipeline(Readable.fromWeb(up.body as import("node:stream/web").ReadableStream), res, () => {});
      else res.end();
    } catch {
      res.destroy();
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    requests,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
