import { readFileSync } from "node:fs";
import { type ParseArgsConfig, parseArgs } from "node:util";

/** Where the CLI reads and writes; injected so commands can be tested in-process. */
export interface CliIo {
  out(s: string): void;
  err(s: string): void;
  /** Reads standard input to the end. */
  stdin(): Promise<string>;
  env: Record<string, string | undefined>;
}

/** The real process's streams. */
export const processIo: CliIo = {
  out: (s) => void process.stdout.write(s),
  err: (s) => void process.stderr.write(s),
  stdin: async () => {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  },
  env: process.env,
};

/** A usage or input error: printed as one line, exit code 2. */
export class CliError extends Error {
  override readonly name = "CliError";
}

/** `node:util` parseArgs, with its errors turned into one clear CliError line. */
export function parseCliArgs(
  args: string[],
  options: NonNullable<ParseArgsConfig["options"]>,
  allowPositionals: boolean,
): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const r = parseArgs({ args, options, allowPositionals, strict: true });
    return { values: r.values as Record<string, string | boolean | undefined>, positionals: r.positionals };
  } catch (e) {
    throw new CliError(e instanceof Error ? (e.message.split("\n")[0] ?? e.message) : String(e));
  }
}

/** Reads a file (or stdin for "-"), with a clear error naming the file. */
export async function readInput(path: string | undefined, io: CliIo): Promise<string> {
  if (path === undefined || path === "-") return io.stdin();
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CliError(
      `cannot read ${path}: ${code === "ENOENT" ? "no such file" : code === "EISDIR" ? "is a directory" : (e as Error).message}`,
    );
  }
}
