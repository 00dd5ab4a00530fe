import { describe, expect, it } from "vitest";
import { loadConfig } from "../config/load.js";
import type { Logger } from "../core/logger.js";
import { MemoryStore } from "../stores/memory-store.js";
import { StoreUnavailableError } from "../stores/types.js";
import { createSwitchBoard } from "./switch-board.js";

class FlakySwitches extends MemoryStore {
  down = false;
  override async getSwitches(nowMs?: number): Promise<Record<string, boolean>> {
    if (this.down) throw new StoreUnavailableError("connection is reconnecting", { notSent: true });
    return super.getSwitches(nowMs);
  }
}

describe("switch board", () => {
  it("while the store is down: keeps the last state, and says so once (not at every poll), then once when it is back", async () => {
    const lines: Array<[string, string]> = [];
    const logger: Logger = {
      info: (_o, m = "") => void lines.push(["info", m]),
      warn: (_o, m = "") => void lines.push(["warn", m]),
      error: (_o, m = "") => void lines.push(["error", m]),
    };
    const config = loadConfig(
      { features: { chat: { model: "gpt-4o", max_input: 100, max_output: 10, on_exceed: "trim" } } },
      {},
    );
    const store = new FlakySwitches();
    const board = createSwitchBoard({ config, store, logger, refreshMs: 0 });
    await store.setSwitch("chat", false);
    await board.refresh();
    expect(board.isEnabled("chat")).toBe(false);
    store.down = true;
    for (let i = 0; i < 20; i++) await board.refresh(); // ten seconds of 500 ms polls
    expect(board.isEnabled("chat")).toBe(false); // the last known state
    expect(lines).toEqual([
      [
        "warn",
        "could not refresh feature switches; keeping the last known state until the store answers again",
      ],
    ]);
    store.down = false;
    await board.refresh();
    await board.refresh();
    expect(lines.slice(1)).toEqual([["info", "feature switches read from the store again"]]);
    store.down = true;
    await board.refresh();
    expect(lines).toHaveLength(3); // a new outage is said again
    board.close();
  });
});
