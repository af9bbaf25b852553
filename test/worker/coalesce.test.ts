/** Coalescing of concurrent computations of one key (worker/cache/coalesce.ts), run in workerd. */
import { describe, expect, it } from "vitest";
import { Coalescer } from "../../worker/cache/coalesce";

const within = <T>(p: Promise<T>, ms: number): Promise<T> =>
  Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms))]);

describe("Coalescer", () => {
  it("gives a waiter the computing request's result when it comes in time, with no second computation", async () => {
    const c = new Coalescer<number>(0, 1_000);
    let computations = 0;
    const leader = c.batch(["k"], async (keys) => {
      computations++;
      await new Promise((r) => setTimeout(r, 30));
      return new Map(keys.map((k) => [k, 1]));
    });
    const waiter = c.batch(["k"], async (keys) => {
      computations++;
      return new Map(keys.map((k) => [k, 2]));
    });
    expect((await waiter).get("k")).toBe(1);
    expect((await leader).get("k")).toBe(1);
    expect(computations).toBe(1);
  });

  it("lets a waiter give up on a computation that never ends and compute the key itself, so the key is not stranded", async () => {
    const c = new Coalescer<number>(0, 50);
    void c.batch(["k"], () => new Promise<Map<string, number>>(() => {})); // a leader whose request was cancelled
    const got = await within(c.batch(["k"], async (keys) => new Map(keys.map((k) => [k, 7]))), 2_000);
    expect(got.get("k")).toBe(7);
    // and later reads are no longer held by the dead computation
    const later = await within(c.batch(["k"], async (keys) => new Map(keys.map((k) => [k, 8]))), 2_000);
    expect(later.get("k")).toBe(8);
  });
});
