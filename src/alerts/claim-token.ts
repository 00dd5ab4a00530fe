import { randomUUID } from "node:crypto";

/**
 * The owner token to claim with (Store.claimOnce's `owner`). A claim is asked with a fresh token;
 * one whose call failed is asked again with the token of that failed call, so that if the failed
 * call did take the claim (its reply was lost), the retry is told it won. Why not one token per
 * process: a process that forgot it had won (its "asked" set is bounded) would then win again and
 * alert twice.
 */
export function createClaimTokens(max = 10_000) {
  const failed = new Map<string, string>();
  return {
    /** The token to ask `claim` with now. */
    tokenFor(claim: string): string {
      return failed.get(claim) ?? randomUUID();
    },
    /** The call for `claim` with `token` failed: the next ask reuses the token. */
    failed(claim: string, token: string): void {
      if (failed.size >= max) failed.clear(); // bounded: at worst a lost-reply claim stays lost
      failed.set(claim, token);
    },
    /** The store answered for `claim` (won or not). */
    answered(claim: string): void {
      failed.delete(claim);
    },
  };
}
