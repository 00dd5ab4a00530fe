// tokenfuse dashboard: one page over the gateway's admin API (docs/admin-api.md), served by the
// gateway at /dashboard. No framework and no build step; every value from the API is written with
// textContent (never as HTML), and the page's CSP allows scripts and requests to this origin only.
// The DOM code takes its environment as an argument so that tests can run it against a real gateway.

const TOKEN_KEY = "tokenfuse.adminToken";
const REFRESH_MS = 5000;

/**
 * A nano-USD amount as dollars, exactly, as the CLI prints it (src/cost/format-usd.ts): cents when
 * whole cents, else at least four decimals and as many more as needed.
 */
export function formatUsd(nanoUsd) {
  const sign = nanoUsd < 0 ? "-" : "";
  const n = Math.abs(nanoUsd);
  const whole = Math.floor(n / 1e9);
  const fraction = String(n - whole * 1e9).padStart(9, "0");
  const digits = n % 10_000_000 === 0 ? fraction.slice(0, 2) : fraction.replace(/0{1,5}$/, "");
  return `${sign}$${whole}.${digits}`;
}

/** An integer with thousands separators. */
export function formatInt(n) {
  return Math.round(n).toLocaleString("en-US");
}

/** The usage rows' name of the UTC hour holding `ms`: `2026-11-24T16:00Z`. */
export function hourWindowOf(ms) {
  return `${new Date(ms).toISOString().slice(0, 13)}:00Z`;
}

function add(map, key, row) {
  const t = map.get(key) ?? { requests: 0, inputTokens: 0, outputTokens: 0, costNanoUsd: 0 };
  t.requests += row.requests;
  t.inputTokens += row.input_tokens;
  t.outputTokens += row.output_tokens;
  t.costNanoUsd += row.cost_nano_usd;
  map.set(key, t);
}

/**
 * Totals of `GET /admin/usage` rows: per scope for the hour `hour` and over every row, and the
 * global scope's hours in order (for the spend-per-hour table).
 */
export function summarize(rows, hour) {
  const thisHour = new Map();
  const total = new Map();
  const hours = [];
  for (const r of rows) {
    add(total, r.scope, r);
    if (r.window === hour) add(thisHour, r.scope, r);
    if (r.scope === "global")
      hours.push({ window: r.window, requests: r.requests, costNanoUsd: r.cost_nano_usd });
  }
  return { thisHour, total, hours };
}

const EMPTY = { requests: 0, inputTokens: 0, outputTokens: 0, costNanoUsd: 0 };

/**
 * Starts the dashboard in `env.document` (the page of index.html). `env`: document, fetch,
 * storage (sessionStorage), setInterval, clearInterval, confirm, now (ms). Returns refresh() and
 * stop().
 */
export function startDashboard(env) {
  const { document: doc } = env;
  const $ = (id) => doc.getElementById(id);
  let timer;

  const cell = (text, numeric = false) => {
    const td = doc.createElement("td");
    td.textContent = text;
    if (numeric) td.className = "num";
    return td;
  };
  const row = (cells) => {
    const tr = doc.createElement("tr");
    for (const c of cells) tr.append(c);
    return tr;
  };
  const status = (text, kind) => {
    $("status").textContent = text;
    $("status").className = kind;
  };

  /** Calls the admin API; returns the parsed body, or throws an Error with the API's own message. */
  async function api(path, init = {}) {
    const token = env.storage.getItem(TOKEN_KEY);
    let res;
    try {
      res = await env.fetch(path, {
        ...init,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      });
    } catch {
      throw new Error("the gateway did not answer");
    }
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      const e = new Error(body?.error?.message ?? `HTTP ${res.status}`);
      e.status = res.status;
      throw e;
    }
    return body;
  }

  function showSignedIn(on) {
    $("login").hidden = on;
    $("signed-in").hidden = !on;
    $("overview").hidden = !on;
  }

  function renderFeatures(features, sum) {
    const body = $("features").querySelector("tbody");
    body.replaceChildren();
    for (const [name, f] of Object.entries(features)) {
      const hour = sum.thisHour.get(`feature ${name}`) ?? EMPTY;
      const day = sum.total.get(`feature ${name}`) ?? EMPTY;
      const button = doc.createElement("button");
      button.type = "button";
      button.textContent = f.enabled ? "Switch off" : "Switch on";
      button.className = f.enabled ? "on" : "off";
      button.dataset.feature = name;
      button.addEventListener("click", () => toggle(name, !f.enabled));
      const tr = row([
        cell(name),
        cell(f.model ?? ""),
        cell(`${formatInt(f.max_input ?? 0)} / ${formatInt(f.max_output ?? 0)}`, true),
        cell(f.hourly_cost_usd === undefined ? "–" : `$${f.hourly_cost_usd}`, true),
        cell(formatInt(hour.requests), true),
        cell(formatUsd(hour.costNanoUsd), true),
        cell(formatUsd(day.costNanoUsd), true),
        (() => {
          const td = doc.createElement("td");
          const state = doc.createElement("span");
          state.textContent = f.enabled ? "on " : "off ";
          td.append(state, button);
          return td;
        })(),
      ]);
      if (!f.enabled) tr.className = "off";
      body.append(tr);
    }
  }

  function renderGlobal(sum) {
    const body = $("global").querySelector("tbody");
    body.replaceChildren();
    const scopes = ["global", ...[...sum.total.keys()].filter((s) => s.startsWith("model "))];
    for (const scope of scopes) {
      const h = sum.thisHour.get(scope) ?? EMPTY;
      const d = sum.total.get(scope) ?? EMPTY;
      body.append(
        row([
          cell(scope),
          cell(formatInt(h.requests), true),
          cell(formatInt(h.inputTokens), true),
          cell(formatInt(h.outputTokens), true),
          cell(formatUsd(h.costNanoUsd), true),
          cell(formatUsd(d.costNanoUsd), true),
        ]),
      );
    }
  }

  function renderHours(sum) {
    const body = $("hours").querySelector("tbody");
    body.replaceChildren();
    const max = Math.max(1, ...sum.hours.map((h) => h.costNanoUsd));
    for (const h of [...sum.hours].reverse()) {
      const bar = doc.createElement("span");
      bar.className = "bar";
      // CSSOM, not a style attribute: allowed by the page's CSP (style-src 'self').
      bar.style.width = `${Math.round((h.costNanoUsd / max) * 200)}px`;
      const td = doc.createElement("td");
      td.append(bar);
      body.append(
        row([cell(h.window), cell(formatInt(h.requests), true), cell(formatUsd(h.costNanoUsd), true), td]),
      );
    }
  }

  async function refresh() {
    if (!env.storage.getItem(TOKEN_KEY)) {
      showSignedIn(false);
      status("not signed in", "");
      return;
    }
    try {
      const [features, usage] = await Promise.all([api("/admin/features"), api("/admin/usage?hours=24")]);
      const hour = hourWindowOf(env.now());
      const sum = summarize(usage.rows, hour);
      showSignedIn(true);
      $("hour").textContent = hour;
      renderGlobal(sum);
      renderFeatures(features.features, sum);
      renderHours(sum);
      status(`updated ${new Date(env.now()).toISOString().slice(11, 19)} UTC`, "ok");
    } catch (e) {
      if (e.status === 401) {
        env.storage.removeItem(TOKEN_KEY);
        showSignedIn(false);
      }
      status(e.message, "error");
    }
  }

  async function toggle(name, enabled) {
    if (
      !env.confirm(
        `Switch feature "${name}" ${enabled ? "on" : "off"}? Every gateway on this store follows within a second.`,
      )
    )
      return;
    try {
      await api(`/admin/features/${encodeURIComponent(name)}`, {
        method: "PUT",
        body: JSON.stringify({ enabled }),
      });
    } catch (e) {
      status(e.message, "error");
      return;
    }
    await refresh();
  }

  async function lookUpUser(user) {
    const out = $("user-result");
    out.replaceChildren();
    try {
      const [who, usage] = await Promise.all([
        api(`/admin/users/${encodeURIComponent(user)}`),
        api(`/admin/usage?hours=24&user=${encodeURIComponent(user)}`),
      ]);
      const p = doc.createElement("p");
      p.textContent = `${who.user}: tier ${who.tier ?? "(per key)"} (${who.source}), ${who.keys.length} key(s)`;
      const table = doc.createElement("table");
      const head = row(
        ["day", "requests", "input tokens", "output tokens", "cost"].map((t) => {
          const th = doc.createElement("th");
          th.textContent = t;
          return th;
        }),
      );
      table.append(head);
      for (const r of usage.rows.filter((x) => x.scope === `user ${user}`)) {
        table.append(
          row([
            cell(r.window),
            cell(formatInt(r.requests), true),
            cell(formatInt(r.input_tokens), true),
            cell(formatInt(r.output_tokens), true),
            cell(formatUsd(r.cost_nano_usd), true),
          ]),
        );
      }
      out.append(p, table);
    } catch (e) {
      const p = doc.createElement("p");
      p.textContent = e.message;
      out.append(p);
    }
  }

  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    env.storage.setItem(TOKEN_KEY, $("token").value);
    $("token").value = "";
    void refresh();
  });
  $("logout").addEventListener("click", () => {
    env.storage.removeItem(TOKEN_KEY);
    void refresh();
  });
  $("user-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void lookUpUser($("user").value.trim());
  });

  timer = env.setInterval(() => void refresh(), REFRESH_MS);
  const first = refresh();
  return {
    refresh,
    ready: first,
    stop() {
      env.clearInterval(timer);
    },
  };
}

if (typeof window !== "undefined" && window.document.getElementById("tf-dashboard")) {
  startDashboard({
    document: window.document,
    fetch: window.fetch.bind(window),
    storage: window.sessionStorage,
    setInterval: window.setInterval.bind(window),
    clearInterval: window.clearInterval.bind(window),
    confirm: window.confirm.bind(window),
    now: () => Date.now(),
  });
}
