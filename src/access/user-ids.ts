import { USER_ID_PATTERN } from "../config/schema-fields.js";

/**
 * The user ids budgets are charged to. A key's user follows the config's rule (`keys[].user`); an end
 * user named by a trusted key (`x-tokenfuse-user`) is charged as `<key user>/<end user>`.
 */

/** An end-user id a trusted key may name: bounded and printable. */
export const END_USER_PATTERN = /^[A-Za-z0-9_.:@+-]{1,128}$/;

/** The rule for a key's user, in words (for error messages). */
export const USER_ID_RULE =
  '1-128 letters, digits, "_", "-", ".", "@" or "+", starting with a letter or digit';

/** True for a key's user id (`alice`), as the config's `keys[].user` allows. */
export function isKeyUserId(s: unknown): s is string {
  return typeof s === "string" && USER_ID_PATTERN.test(s);
}

/** True for an id budgets are charged to: a key's user, or `<key user>/<end user>`. */
export function isBudgetUserId(s: unknown): s is string {
  if (typeof s !== "string") return false;
  const slash = s.indexOf("/");
  if (slash < 0) return USER_ID_PATTERN.test(s);
  return USER_ID_PATTERN.test(s.slice(0, slash)) && END_USER_PATTERN.test(s.slice(slash + 1));
}
