/**
 * `npm run schema`: regenerates the committed files derived from the config schema —
 * schema/tokenfuse.schema.json (editors) and docs/config.md (reference). Run it after changing
 * src/config/schema.ts; tests fail while either file is stale.
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { renderConfigReference } from "./config-docs.js";
import { configJsonSchemaText } from "./json-schema.js";

/** Where the JSON Schema is committed. */
export const JSON_SCHEMA_FILE = fileURLToPath(new URL("../../schema/tokenfuse.schema.json", import.meta.url));
/** Where the config reference is committed. */
export const CONFIG_DOCS_FILE = fileURLToPath(new URL("../../docs/config.md", import.meta.url));

/** Writes both generated files. */
export function writeGeneratedConfigFiles(): void {
  writeFileSync(JSON_SCHEMA_FILE, configJsonSchemaText());
  writeFileSync(CONFIG_DOCS_FILE, renderConfigReference());
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeGeneratedConfigFiles();
  console.log(`wrote ${JSON_SCHEMA_FILE}\nwrote ${CONFIG_DOCS_FILE}`);
}
