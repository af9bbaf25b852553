/** Small statistics for benchmark samples: medians, percentiles and spreads. */

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function median(xs: readonly number[]): number {
  return percentile([...xs].sort((a, b) => a - b), 50);
}

/** "min–max" of repeated samples, each shown by `format`: the spread of a noisy figure. */
export function spread(xs: readonly number[], format: (x: number) => string = (x) => String(Math.round(x))): string {
  return `${format(Math.min(...xs))}–${format(Math.max(...xs))}`;
}
