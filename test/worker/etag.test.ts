/** ETags of aggregate bodies: FNV-1a 64, checked against the published test vectors. */
import { describe, expect, it } from "vitest";
import { etagOf } from "../../worker/cache/etag";

describe("etagOf", () => {
  it.each([
    ["", "cbf29ce484222325"],
    ["a", "af63dc4c8601ec8c"],
    ["foobar", "85944171f73967e8"],
    ['{"sku":"x"}', "e0cf2fbca4962a42"],
  ])("hashes %j to FNV-1a 64 %s", (body, hex) => {
    expect(etagOf(body)).toBe(`"${hex}"`);
  });

  it("changes when one digit of a price changes", () => {
    const a = etagOf('{"price":{"amount":59990}}');
    expect(etagOf('{"price":{"amount":59991}}')).not.toBe(a);
  });
});
