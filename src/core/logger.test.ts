import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.js";

describe("createLogger", () => {
  it("refuses a log level pino does not have, naming the variable and the levels", () => {
    const sink = { write() {} };
    expect(() => createLogger("loud", sink)).toThrow(
      'TOKENFUSE_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent (it is "loud")',
    );
    expect(() => createLogger("debug", sink)).not.toThrow();
    expect(() => createLogger("WARN", sink)).not.toThrow(); // any case
    expect(() => createLogger("SILENT", sink)).not.toThrow();
  });
});
