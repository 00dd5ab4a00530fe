import { describe } from "vitest";
import { DELETE, hashOf, itRejectsEach } from "./test-config-fixtures.js";

describe("cross-references name the path and the valid names", () => {
  itRejectsEach([
    [
      "key tier",
      [[["keys", 0, "tier"], "gold"]],
      "keys[0].tier",
      /^unknown tier "gold"; expected one of: free, pro$/,
    ],
    [
      "default tier",
      [[["default_tier"], "gold"]],
      "default_tier",
      /^unknown tier "gold"; expected one of: free, pro$/,
    ],
    [
      "no free tier and no default_tier",
      [
        [["default_tier"], DELETE],
        [["tiers", "free"], DELETE],
      ],
      "default_tier",
      /^required because tiers has no "free" tier; expected one of: pro$/,
    ],
    [
      "key feature",
      [
        [
          ["keys", 0, "features"],
          ["chat", "chta"],
        ],
      ],
      "keys[0].features[1]",
      /^unknown feature "chta"; expected one of: chat, summarize, support$/,
    ],
    [
      "default feature outside the key's features",
      [[["keys", 0, "default_feature"], "support"]],
      "keys[0].default_feature",
      /^"support" is not among this key's features; expected one of: chat, summarize$/,
    ],
    [
      "unknown default feature",
      [[["keys", 1, "default_feature"], "nope"]],
      "keys[1].default_feature",
      /^unknown feature "nope"/,
    ],
    [
      "feature upstream",
      [[["features", "chat", "upstream"], "anthropic"]],
      "features.chat.upstream",
      /^unknown upstream "anthropic"; expected one of: local, openai$/,
    ],
    [
      "summarize without summarize_with",
      [[["features", "support", "summarize_with"], DELETE]],
      "features.support.summarize_with",
      /^required when on_exceed is "summarize"/,
    ],
    [
      "summarize_with without summarize",
      [[["features", "chat", "summarize_with"], "summarize"]],
      "features.chat.summarize_with",
      /^only allowed when on_exceed is "summarize"/,
    ],
    [
      "summarize_with unknown",
      [[["features", "support", "summarize_with"], "summary"]],
      "features.support.summarize_with",
      /^unknown feature "summary"/,
    ],
    [
      "summarizer is itself",
      [[["features", "support", "summarize_with"], "support"]],
      "features.support.summarize_with",
      /itself uses on_exceed "summarize".*no cycles/,
    ],
    [
      "summarizer cycle through two features",
      [
        [["features", "summarize", "on_exceed"], "summarize"],
        [["features", "summarize", "summarize_with"], "chat"],
      ],
      "features.support.summarize_with",
      /^feature "summarize" itself uses on_exceed "summarize"/,
    ],
    ["duplicate hash", [[["keys", 1, "hash"], hashOf("a")]], "keys[1].hash", /^duplicate of keys\[0\]\.hash/],
  ]);
});

describe("references to built-in sections use the built-in names", () => {
  itRejectsEach([
    [
      "tier when tiers are omitted",
      [
        [["tiers"], DELETE],
        [["keys", 0, "tier"], "gold"],
      ],
      "keys[0].tier",
      /expected one of: free, pro, enterprise$/,
    ],
    [
      "upstream when upstreams are omitted",
      [
        [["upstreams"], DELETE],
        [["features", "chat", "upstream"], "openai"],
      ],
      "features.chat.upstream",
      /expected one of: mock$/,
    ],
    [
      "feature when features are omitted",
      [
        [["features"], DELETE],
        [["keys", 0, "features"], ["support"]],
        [["keys", 0, "default_feature"], DELETE],
      ],
      "keys[0].features[0]",
      /expected one of: chat, summarize, code_review, quick_answer$/,
    ],
  ]);
});
