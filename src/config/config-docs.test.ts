import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { renderConfigReference } from "./config-docs.js";
import { configFileSchema } from "./schema.js";

const COMMITTED = new URL("../../docs/config.md", import.meta.url);

describe("docs/config.md", () => {
  it("matches the schema (run `npm run schema` after changing src/config/schema.ts or config-docs.ts)", () => {
    const committed = readFileSync(COMMITTED, "utf8");
    expect(committed, "docs/config.md is stale: run `npm run schema` and commit the result").toBe(
      renderConfigReference(),
    );
  });

  it("has a section for every top-level key and a row for nested ones", () => {
    const page = renderConfigReference();
    for (const key of Object.keys(configFileSchema.shape)) {
      if (key !== "$schema") expect(page).toContain(`### \`${key}\``);
    }
    for (const row of [
      "`features.<name>.max_input`",
      "`upstreams.<name>.completion_tokens` *(type mock)*",
      "`keys[].default_feature`",
      "`alerts.sinks[].url` *(type webhook)*",
      "`prices.<model>.cached_input`",
      "`store.on_error`",
    ]) {
      expect(page).toContain(row);
    }
  });
});
