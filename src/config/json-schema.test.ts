import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { configJsonSchema, configJsonSchemaText, ENV_REFERENCE_PATTERN } from "./json-schema.js";
import { configFileSchema } from "./schema.js";

const COMMITTED = new URL("../../schema/tokenfuse.schema.json", import.meta.url);

describe("schema/tokenfuse.schema.json", () => {
  it("matches the zod schema (run `npm run schema` after changing src/config/schema.ts)", () => {
    const committed = readFileSync(COMMITTED, "utf8");
    expect(
      committed,
      "schema/tokenfuse.schema.json is stale: run `npm run schema` and commit the result",
    ).toBe(configJsonSchemaText());
  });

  it("describes every top-level key, strictly", () => {
    const schema = configJsonSchema();
    expect(Object.keys(schema.properties as object)).toEqual(Object.keys(configFileSchema.shape));
    expect(schema.additionalProperties).toBe(false);
    expect(schema.$schema).toBe("http://json-schema.org/draft-07/schema#");
  });

  it("lets pattern-checked strings be written as ${env:NAME}", () => {
    const text = configJsonSchemaText();
    expect(text).toContain(JSON.stringify(ENV_REFERENCE_PATTERN));
    expect(new RegExp(ENV_REFERENCE_PATTERN).test("https://${env:HOOK}/x")).toBe(true);
    expect(new RegExp(ENV_REFERENCE_PATTERN).test("${HOOK}")).toBe(false);
  });

  it("documents every field", () => {
    const undocumented: string[] = [];
    const walk = (node: unknown, path: string) => {
      if (node === null || typeof node !== "object") return;
      const record = node as Record<string, unknown>;
      const properties = record.properties as Record<string, Record<string, unknown>> | undefined;
      for (const [key, child] of Object.entries(properties ?? {})) {
        if (typeof child.description !== "string") undocumented.push(`${path}.${key}`);
        walk(child, `${path}.${key}`);
      }
      for (const key of ["additionalProperties", "items"]) walk(record[key], path);
      for (const key of ["anyOf", "oneOf"])
        for (const variant of (record[key] as unknown[]) ?? []) walk(variant, path);
    };
    walk(configJsonSchema(), "");
    expect(undocumented).toEqual([]);
  });
});
