/**
 * Checks between sections: every name used somewhere (tiers, features, upstreams) must be defined.
 * Runs on the raw (interpolated) tree, next to the schema validation rather than after it, so that one
 * run reports reference errors together with value errors; values of the wrong type are skipped here
 * because the schema already reports them.
 */
import type { RawConfigIssue } from "./config-error.js";
import type { PathSegment } from "./config-path.js";
import { DEFAULT_FEATURES, DEFAULT_TIER_NAME, DEFAULT_TIERS, DEFAULT_UPSTREAMS } from "./defaults.js";

type Tree = Record<string, unknown>;

function isTree(value: unknown): value is Tree {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Entries of a named section as written, the built-in ones when omitted, undefined when malformed. */
function sectionEntries(root: Tree, key: string, defaults: Tree): Tree | undefined {
  const section = root[key];
  if (section === undefined) return defaults;
  return isTree(section) ? section : undefined;
}

/** Lists the valid names for a message, shortened when there are many. */
function listNames(names: readonly string[]): string {
  if (names.length === 0) return "(none defined)";
  const shown = names.slice(0, 20).join(", ");
  return names.length > 20 ? `${shown}, … (${names.length} in all)` : shown;
}

/** Runs every cross-reference check on `tree`. */
export function checkReferences(tree: unknown): RawConfigIssue[] {
  if (!isTree(tree)) return [];
  const issues: RawConfigIssue[] = [];
  const features = sectionEntries(tree, "features", DEFAULT_FEATURES);
  const tiers = sectionEntries(tree, "tiers", DEFAULT_TIERS);
  const upstreams = sectionEntries(tree, "upstreams", DEFAULT_UPSTREAMS);

  /** Reports `value` at `path` unless it names an entry of `section` (skipped when unknowable). */
  const expectName = (
    section: Tree | undefined,
    kind: string,
    value: unknown,
    path: PathSegment[],
  ): boolean => {
    if (section === undefined || typeof value !== "string" || value === "") return true;
    if (Object.hasOwn(section, value)) return true;
    issues.push({
      path,
      message: `unknown ${kind} "${value}"; expected one of: ${listNames(Object.keys(section))}`,
    });
    return false;
  };

  checkDefaultTier(tree, tiers, expectName, issues);
  if (isTree(tree.features)) checkFeatures(tree.features, upstreams, expectName, issues);
  checkKeys(tree.keys, tiers, features, expectName, issues);
  return issues;
}

type ExpectName = (section: Tree | undefined, kind: string, value: unknown, path: PathSegment[]) => boolean;

function checkDefaultTier(
  tree: Tree,
  tiers: Tree | undefined,
  expectName: ExpectName,
  issues: RawConfigIssue[],
) {
  if (tree.default_tier !== undefined) {
    expectName(tiers, "tier", tree.default_tier, ["default_tier"]);
  } else if (tiers !== undefined && !Object.hasOwn(tiers, DEFAULT_TIER_NAME)) {
    issues.push({
      path: ["default_tier"],
      message: `required because tiers has no "${DEFAULT_TIER_NAME}" tier; expected one of: ${listNames(Object.keys(tiers))}`,
    });
  }
}

const ON_EXCEED = new Set(["reject", "trim", "truncate", "summarize"]);

function checkFeatures(
  features: Tree,
  upstreams: Tree | undefined,
  expectName: ExpectName,
  issues: RawConfigIssue[],
) {
  for (const [name, feature] of Object.entries(features)) {
    if (!isTree(feature)) continue;
    const path: PathSegment[] = ["features", name];
    const summarizes = feature.on_exceed === "summarize";
    const summarizer = feature.summarize_with;
    if (summarizes && summarizer === undefined) {
      issues.push({
        path: [...path, "summarize_with"],
        message: 'required when on_exceed is "summarize": the name of the feature that writes summaries',
      });
    } else if (!summarizes && summarizer !== undefined && ON_EXCEED.has(String(feature.on_exceed))) {
      issues.push({
        path: [...path, "summarize_with"],
        message: 'only allowed when on_exceed is "summarize" (remove it, or set on_exceed: summarize)',
      });
    } else if (summarizes && expectName(features, "feature", summarizer, [...path, "summarize_with"])) {
      const target = typeof summarizer === "string" ? features[summarizer] : undefined;
      // Why: a summarizer that itself summarizes could recurse (a → b → a) without bound.
      if (isTree(target) && target.on_exceed === "summarize") {
        issues.push({
          path: [...path, "summarize_with"],
          message: `feature "${String(summarizer)}" itself uses on_exceed "summarize"; expected a feature that does not (no cycles)`,
        });
      }
    }
    if (feature.upstream !== undefined)
      expectName(upstreams, "upstream", feature.upstream, [...path, "upstream"]);
  }
}

function checkKeys(
  keys: unknown,
  tiers: Tree | undefined,
  features: Tree | undefined,
  expectName: ExpectName,
  issues: RawConfigIssue[],
) {
  if (!Array.isArray(keys)) return;
  const firstByHash = new Map<string, number>();
  keys.forEach((key: unknown, index) => {
    if (!isTree(key)) return;
    const path: PathSegment[] = ["keys", index];
    if (typeof key.hash === "string") {
      const first = firstByHash.get(key.hash);
      if (first === undefined) firstByHash.set(key.hash, index);
      else
        issues.push({
          path: [...path, "hash"],
          message: `duplicate of keys[${first}].hash (each key must be unique)`,
        });
    }
    if (key.tier !== undefined) expectName(tiers, "tier", key.tier, [...path, "tier"]);
    const allowed = Array.isArray(key.features) ? key.features : undefined;
    allowed?.forEach((feature: unknown, j) => {
      expectName(features, "feature", feature, [...path, "features", j]);
    });
    const fallback = key.default_feature;
    if (fallback === undefined || !expectName(features, "feature", fallback, [...path, "default_feature"]))
      return;
    if (allowed !== undefined && typeof fallback === "string" && !allowed.includes(fallback)) {
      issues.push({
        path: [...path, "default_feature"],
        message: `"${fallback}" is not among this key's features; expected one of: ${listNames(allowed.map(String))}`,
      });
    }
  });
}
