/**
 * The JSON Schema of the config file, generated from the zod schema so that the two cannot disagree.
 * Editors use it for completion and validation (`schema/tokenfuse.schema.json`, refreshed by
 * `npm run schema`; a test fails when the committed file drifts).
 */
import { z } from "zod";
import { configFileSchema } from "./schema.js";

/** Matches a string made only of `${env:NAME}` references and other text, as interpolation allows. */
export const ENV_REFERENCE_PATTERN = "\\$\\{env:[A-Za-z_][A-Za-z0-9_]*\\}";

/** A JSON Schema document. */
export type JsonSchema = Record<string, unknown>;

/**
 * Returns the JSON Schema (draft-07, which editors support best) of the config file as written:
 * optional keys are optional and defaults are shown. A string field that must match a pattern or
 * format (URLs, hashes) also accepts a `${env:NAME}` reference, since interpolation happens before
 * validation.
 */
export function configJsonSchema(): JsonSchema {
  return z.toJSONSchema(configFileSchema, {
    target: "draft-07",
    io: "input",
    override: ({ jsonSchema, path }) => {
      const node = jsonSchema as Record<string, unknown>;
      if (node.type !== "string" || (node.pattern === undefined && node.format === undefined)) return;
      if (path.includes("propertyNames")) return; // map keys are not interpolated
      const { description, default: fallback, writeOnly, ...checks } = node;
      for (const key of Object.keys(node)) delete node[key];
      if (description !== undefined) node.description = description;
      if (fallback !== undefined) node.default = fallback;
      if (writeOnly !== undefined) node.writeOnly = writeOnly;
      node.anyOf = [checks, { type: "string", pattern: ENV_REFERENCE_PATTERN }];
    },
  }) as JsonSchema;
}

/** The committed file's exact text: the schema as 2-space JSON with a final newline. */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
