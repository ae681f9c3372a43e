/**
 * Greedy pair merging shared by the BPE tokenizers: repeatedly merge the adjacent pair with the best (lowest)
 * priority, ties to the leftmost pair, until no adjacent pair can be merged. This is what GPT-2's `bpe()` (lowest
 * merge rank) and llama2.c's `encode()` (highest score of the merged piece, first one found) do. Short sequences use
 * a plain rescan; long ones a binary heap over a linked list (O(n log n)) with exactly the same merge order, so a whole
 * document can be encoded in one call.
 */

/** The merge of the pair (a, b): its result id and priority (lower merges first), or undefined if it cannot merge. */
export type PairLookup = (a: number, b: number) => { id: number; priority: number } | undefined;

const HEAP_THRESHOLD = 48;

export function mergePairs(ids: number[], lookup: PairLookup): number[] {
  return ids.length < HEAP_THRESHOLD ? mergeScan(ids, lookup) : mergeHeap(ids, lookup);
}

/** Plain rescan: O(n²), fastest for words. */
export function mergeScan(input: readonly number[], lookup: PairLookup): number[] {
  const ids = input.slice();
  for (;;) {
    let best = Infinity;
    let bestIdx = -1;
    let bestId = -1;
    for (let i = 0; i + 1 < ids.length; i++) {
      const m = lookup(ids[i]!, ids[i + 1]!);
      if (m !== undefined && m.priority < best) {
        best = m.priority;
        bestIdx = i;
        bestId = m.id;
      }
    }
    if (bestIdx < 0) return ids;
    ids.splice(bestIdx, 2, bestId);
  }
}

/** Heap over (priority, left position) with lazily invalidated entries; same merge order as mergeScan. */
export function mergeHeap(input: readonly number[], lookup: PairLookup): number[] {
  const n = input.length;
  if (n < 2) return input.slice();
  const tok = Int32Array.from(input);
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  const ver = new Int32Array(n); // bumped when a node's token changes or the node dies
  const alive = new Uint8Array(n).fill(1);
  for (let i = 0; i < n; i++) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  // heap entries in parallel growable arrays
  let cap = Math.max(16, 2 * n);
  let pri = new Float64Array(cap);
  let left = new Int32Array(cap);
  let right = new Int32Array(cap);
  let verL = new Int32Array(cap);
  let verR = new Int32Array(cap);
  let res = new Int32Array(cap);
  let size = 0;
  const less = (x: number, y: number) => pri[x]! < pri[y]! || (pri[x] === pri[y] && left[x]! < left[y]!);
  const swap = (x: number, y: number) => {
    let t: number;
    t = pri[x]!; pri[x] = pri[y]!; pri[y] = t;
    t = left[x]!; left[x] = left[y]!; left[y] = t;
    t = right[x]!; right[x] = right[y]!; right[y] = t;
    t = verL[x]!; verL[x] = verL[y]!; verL[y] = t;
    t = verR[x]!; verR[x] = verR[y]!; verR[y] = t;
    t = res[x]!; res[x] = res[y]!; res[y] = t;
  };
  const grow = () => {
    cap *= 2;
    const g = <T extends Float64Array | Int32Array>(a: T): T => {
      const b = new (a.constructor as new (n: number) => T)(cap);
      b.set(a);
      return b;
    };
    pri = g(pri); left = g(left); right = g(right); verL = g(verL); verR = g(verR); res = g(res);
  };
  const push = (i: number) => {
    const j = next[i]!;
    if (i < 0 || j < 0) return;
    const m = lookup(tok[i]!, tok[j]!);
    if (m === undefined) return;
    if (size === cap) grow();
    let k = size++;
    pri[k] = m.priority; left[k] = i; right[k] = j; verL[k] = ver[i]!; verR[k] = ver[j]!; res[k] = m.id;
    while (k > 0) {
      const p = (k - 1) >> 1;
      if (!less(k, p)) break;
      swap(k, p);
      k = p;
    }
  };
  const pop = () => {
    size--;
    if (size > 0) {
      swap(0, size);
      let k = 0;
      for (;;) {
        const l = 2 * k + 1;
        if (l >= size) break;
        const r = l + 1;
        const c = r < size && less(r, l) ? r : l;
        if (!less(c, k)) break;
        swap(c, k);
        k = c;
      }
    }
  };
  for (let i = 0; i + 1 < n; i++) push(i);
  while (size > 0) {
    const i = left[0]!;
    const j = right[0]!;
    const valid = alive[i] && alive[j] && next[i] === j && ver[i] === verL[0] && ver[j] === verR[0];
    const id = res[0]!;
    pop();
    if (!valid) continue;
    tok[i] = id;
    ver[i]!++;
    alive[j] = 0;
    ver[j]!++;
    const nj = next[j]!;
    next[i] = nj;
    if (nj >= 0) prev[nj] = i;
    if (prev[i]! >= 0) push(prev[i]!);
    push(i);
  }
  const out: number[] = [];
  for (let i = 0; i >= 0; i = next[i]!) out.push(tok[i]!);
  return out;
}
