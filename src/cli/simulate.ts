import { closeSync, createReadStream, fstatSync, openSync } from "node:fs";
import { MAX_LINE_BYTES, splitLines } from "../usage-log/lines.js";
import { parseUsageLine } from "../usage-log/parse.js";
import {
  APPROXIMATIONS,
  createSimulation,
  LATE_TOLERANCE_MS,
  type Tallies,
  type Tally,
} from "../usage-log/simulate.js";
import { resolveCliConfig } from "./config-arg.js";
import { CliError, type CliIo, parseCliArgs } from "./io.js";
import { num, renderTable, usd } from "./table.js";

/** Malformed lines reported one by one on stderr (the rest are counted). */
const MALFORMED_SHOWN = 10;

/** Opens the log for reading, or fails with one clear line naming it. */
function openLog(path: string): number {
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    if (fstatSync(fd).isDirectory()) throw Object.assign(new Error("is a directory"), { code: "EISDIR" });
    return fd;
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    const code = (e as NodeJS.ErrnoException).code;
    throw new CliError(
      `cannot read ${path}: ${code === "ENOENT" ? "no such file" : code === "EISDIR" ? "is a directory" : (e as Error).message}`,
    );
  }
}

/**
 * `tokenfuse simulate --log FILE [--config F] [--json] [--strict]`: replays a usage log against a
 * config (see usage-log/simulate.ts) and prints what would be allowed, trimmed and rejected, and what
 * it would cost, per feature and in total, next to what the log shows. A malformed line is skipped,
 * counted and reported with its line number (the first ten on stderr); `--strict` stops at the first
 * one instead (exit 2). Progress goes to stderr every `progressEvery` lines.
 */
export async function runSimulate(
  args: string[],
  io: CliIo,
  options: { progressEvery?: number; maxLineBytes?: number } = {},
): Promise<number> {
  const { values } = parseCliArgs(
    args,
    {
      log: { type: "string" },
      config: { type: "string" },
      json: { type: "boolean", default: false },
      strict: { type: "boolean", default: false },
    },
    false,
  );
  const path = values.log as string | undefined;
  if (path === undefined || path === "")
    throw new CliError("--log FILE is required: a usage log written by a config with usage_log");
  const { config, source } = resolveCliConfig(values.config as string | undefined, io);
  const progressEvery = options.progressEvery ?? 100_000;
  const fd = openLog(path);
  let lineNo = 0;
  const late = { count: 0, first_line: null as number | null, first_behind_ms: 0 };
  const sim = await createSimulation(config, {
    onLate: (_rec, behindMs) => {
      late.count++;
      if (late.first_line === null) {
        late.first_line = lineNo;
        late.first_behind_ms = behindMs;
      }
    },
  });
  const lines = { total: 0, blank: 0, malformed: 0 };
  const malformed: Array<{ line: number; error: string }> = [];
  let fatal: CliError | undefined;
  const maxLineBytes = options.maxLineBytes ?? MAX_LINE_BYTES;
  const input = createReadStream("", { fd });
  /** Skips (counts and reports) a line that cannot be replayed; false when --strict stops here. */
  const skip = (lineNo: number, error: string): boolean => {
    if (values.strict) {
      fatal = new CliError(`${path}:${lineNo}: ${error} (--strict stops at the first malformed line)`);
      return false;
    }
    lines.malformed++;
    if (malformed.length < 100) malformed.push({ line: lineNo, error });
    if (lines.malformed <= MALFORMED_SHOWN)
      io.err(`tokenfuse simulate: skipped line ${lineNo} of ${path}: ${error}\n`);
    return true;
  };
  try {
    for await (const line of splitLines(input, maxLineBytes)) {
      lineNo = ++lines.total;
      if (!("text" in line)) {
        if (skip(lineNo, `line longer than ${num(maxLineBytes)} bytes (${num(line.tooLongBytes)}): not read`))
          continue;
        break;
      }
      const text = line.text;
      if (text.trim() === "") {
        lines.blank++;
        continue;
      }
      const parsed = parseUsageLine(text);
      if (!parsed.ok) {
        if (skip(lineNo, parsed.error)) continue;
        break;
      }
      try {
        await sim.replay(parsed.record);
      } catch (e) {
        // A value the parser let through that the engine refuses: this line only, not the replay.
        if (skip(lineNo, `cannot be replayed: ${(e as Error)?.message ?? String(e)}`)) continue;
        break;
      }
      if (lineNo % progressEvery === 0)
        io.err(`tokenfuse simulate: ${num(lineNo)} lines replayed (log time ${parsed.record.time})\n`);
    }
  } catch (e) {
    // Reading the log failed (an I/O error): one line, exit 2, never a stack trace.
    fatal = new CliError(`cannot read ${path}: ${(e as Error)?.message ?? String(e)}`);
  } finally {
    input.destroy();
  }
  const report = await sim.finish();
  if (fatal) throw fatal;
  if (late.count > 0)
    io.err(
      `tokenfuse simulate: ${num(late.count)} lines of ${path} are more than ${LATE_TOLERANCE_MS / 1000} s older than a line before them (first: line ${late.first_line}, ${duration(late.first_behind_ms)} back); they were replayed at the later time. Sort the log by time_ms (logs of several processes merged?)\n`,
    );
  if (lines.malformed > MALFORMED_SHOWN)
    io.err(`tokenfuse simulate: ${num(lines.malformed - MALFORMED_SHOWN)} more malformed lines skipped\n`);

  if (values.json) {
    io.out(
      `${JSON.stringify(
        {
          log: path,
          config: source,
          lines: {
            total: lines.total,
            decisions: report.decisions,
            settlements: report.settlements,
            blank: lines.blank,
            malformed: lines.malformed,
          },
          malformed_lines: malformed,
          from: report.from,
          to: report.to,
          simulated: report.simulated,
          logged: report.logged,
          not_replayed: report.not_replayed,
          store_unavailable_refusals: report.store_unavailable_refusals,
          degraded_admissions: report.degraded_admissions,
          unsettled: report.unsettled,
          charged_as_reserved: report.charged_as_reserved,
          orphan_settlements: report.orphan_settlements,
          late_lines: { count: late.count, first_line: late.first_line },
          approximations: APPROXIMATIONS,
        },
        null,
        2,
      )}\n`,
    );
    return 0;
  }

  const out: string[] = [];
  out.push(
    `simulated ${source} against ${path}: ${num(lines.total)} lines (${num(report.decisions)} decisions, ${num(report.settlements)} settlements)` +
      (report.from ? `, ${report.from} → ${report.to}` : ", empty log"),
    "",
    "with this config:",
    renderTable(tallyTable(report.simulated)),
    "",
    "as logged:",
    renderTable(tallyTable(report.logged)),
    "",
  );
  const codes = codeTable(report.simulated, report.logged);
  if (codes.length > 1) out.push("rejected, by code:", renderTable(codes), "");
  const notes: string[] = [];
  const nr = report.not_replayed;
  if (nr.requests > 0)
    notes.push(
      `not replayed: ${num(nr.requests)} requests refused before they were counted (${Object.entries(
        nr.by_code,
      )
        .map(([c, n]) => `${c} ${num(n)}`)
        .join(", ")}); they are in "as logged" only`,
    );
  if (report.store_unavailable_refusals > 0)
    notes.push(
      `not replayed: ${num(report.store_unavailable_refusals)} requests refused because the store was unavailable when logged (budget_store_unavailable); they are in "as logged" only`,
    );
  const dg = report.degraded_admissions;
  if (dg.requests > 0)
    notes.push(
      `${num(dg.requests)} requests were admitted while the store was unavailable (${Object.entries(
        dg.by_store,
      )
        .map(([c, n]) => `${c} ${num(n)}`)
        .join(", ")}); replayed against the full limits`,
    );
  if (report.charged_as_reserved > 0)
    notes.push(
      `${num(report.charged_as_reserved)} requests refused in the log would be admitted: charged as reserved (input + output cap × n)`,
    );
  if (report.unsettled > 0)
    notes.push(
      `${num(report.unsettled)} admitted requests have no settlement in the log (their reservations expire)`,
    );
  if (report.orphan_settlements > 0)
    notes.push(`${num(report.orphan_settlements)} settlements have no decision in the log (ignored)`);
  if (late.count > 0)
    notes.push(
      `${num(late.count)} ${late.count === 1 ? "line" : "lines"} more than ${LATE_TOLERANCE_MS / 1000} s out of order (first: line ${late.first_line}): replayed at the latest time seen`,
    );
  if (lines.malformed > 0)
    notes.push(
      `${num(lines.malformed)} malformed lines skipped (first: line ${malformed
        .map((m) => m.line)
        .slice(0, 5)
        .join(", ")})`,
    );
  if (notes.length > 0) out.push(...notes, "");
  out.push(
    "approximated (the log holds token counts, not messages):",
    ...APPROXIMATIONS.map((a) => `- ${a}`),
  );
  io.out(`${out.join("\n")}\n`);
  return 0;
}

function tallyRow(name: string, t: Tally): string[] {
  return [
    name,
    num(t.requests),
    num(t.allowed),
    num(t.trimmed),
    num(t.rejected),
    num(t.input_tokens),
    num(t.output_tokens),
    t.unpriced_settlements > 0
      ? `${usd(t.cost_nano_usd)} + ${num(t.unpriced_settlements)} unpriced`
      : usd(t.cost_nano_usd),
  ];
}

function tallyTable(t: Tallies): string[][] {
  const rows = [
    ["feature", "requests", "allowed", "trimmed", "rejected", "input tokens", "output tokens", "cost"],
  ];
  for (const name of Object.keys(t.features).sort()) rows.push(tallyRow(name, t.features[name] as Tally));
  rows.push(tallyRow("total", t.total));
  return rows;
}

function codeTable(simulated: Tallies, logged: Tallies): string[][] {
  const rows = [["feature", "code", "simulated", "logged"]];
  const features = [...new Set([...Object.keys(simulated.features), ...Object.keys(logged.features)])].sort();
  for (const f of features) {
    const s = simulated.features[f]?.rejected_by_code ?? {};
    const l = logged.features[f]?.rejected_by_code ?? {};
    for (const code of [...new Set([...Object.keys(s), ...Object.keys(l)])].sort())
      rows.push([f, code, num(s[code] ?? 0), num(l[code] ?? 0)]);
  }
  return rows;
}

/** A short human duration: "3.2 s", "4 min", "1.0 h", "2.0 d". */
function duration(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  if (ms < 86_400_000) return `${(ms / 3_600_000).toFixed(1)} h`;
  return `${(ms / 86_400_000).toFixed(1)} d`;
}
