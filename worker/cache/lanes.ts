/**
 * Calls to a store with no batch call (the Cache API, Workers KV), a few at a
 * time: `fn` on every item, at most `lanes` in flight. Settles when all have;
 * the items whose call threw, with what it threw.
 */
export async function eachInLanes<T>(items: readonly T[], lanes: number, fn: (item: T) => Promise<void>): Promise<{ item: T; error: unknown }[]> {
  let next = 0;
  const failed: { item: T; error: unknown }[] = [];
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (error) {
        failed.push({ item, error });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(lanes, items.length) }, lane));
  return failed;
}
