/**
 * Algorithm R, one item at a time: where the `seen`-th item (0-based) of a stream goes in a
 * reservoir of `size`, or undefined when it is not kept. While fewer than `size` arrived each
 * is kept in the next slot (no draw); after that item i replaces a uniformly chosen slot with
 * probability size / (i + 1), so the reservoir stays a uniform sample of everything seen.
 */
export function reservoirSlot(seen: number, size: number, random: () => number): number | undefined {
  if (seen < size) return seen;
  const j = Math.floor(random() * (seen + 1));
  return j < size ? j : undefined;
}

/**
 * Offers the `seen`-th value (0-based) of a stream to `sample`, a reservoir of at most `size`
 * that has been offered every earlier value: afterwards it is a uniform sample of
 * min(seen + 1, size) of the values offered so far.
 */
export function offer<T>(sample: T[], seen: number, value: T, random: () => number, size: number): void {
  const slot = reservoirSlot(seen, size, random);
  if (slot !== undefined) sample[slot] = value;
}

/**
 * A uniform sample of two streams together from a uniform sample of each (`a` of `na`
 * values, `b` of `nb`): each draw takes from a stream with the chance that the union's next
 * value comes from it (a hypergeometric split), so the merge is as if one reservoir had seen
 * both.
 */
export function mergeSamples<T>(
  a: readonly T[],
  na: number,
  b: readonly T[],
  nb: number,
  random: () => number,
  size: number,
): T[] {
  if (na + nb <= size) return [...a, ...b];
  const pools: [T[], T[]] = [[...a], [...b]];
  const left = [na, nb];
  const out: T[] = [];
  while (out.length < size) {
    const from = random() * ((left[0] as number) + (left[1] as number)) < (left[0] as number) ? 0 : 1;
    const pool = pools[from];
    const i = Math.floor(random() * pool.length);
    out.push(pool[i] as T);
    pool[i] = pool[pool.length - 1] as T;
    pool.pop();
    left[from] = (left[from] as number) - 1;
  }
  return out;
}
