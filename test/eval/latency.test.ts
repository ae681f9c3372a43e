// measureLatency / compareLatency semantics with fake workloads on a fake clock: each call of a workload advances
// the clock by a scripted number of ms, so what is (and is not) timed shows exactly in the results.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareLatency, compareLatencyAsync, measureLatency, median, medianCI } from '../../src/eval/latency.ts';

// (not test/harness/expect.ts: it loads the whole library through src/index.ts, and this file needs none of it)
const expectThrows = (fn: () => unknown, message: string) => assert.throws(fn, (e: Error) => e.message === message);

/** A fake clock and workloads that advance it: `work(name, [ms of call 1, ms of call 2, …])`. */
function fakeClock() {
  let t = 0;
  const log: string[] = [];
  return {
    now: () => t,
    log,
    advance: (ms: number) => {
      t += ms;
    },
    work(name: string, ms: number[]) {
      let i = 0;
      return () => {
        log.push(name);
        t += ms[Math.min(i++, ms.length - 1)]!;
      };
    },
  };
}

test('median', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([7]), 7);
  expectThrows(() => median([]), 'median: empty list');
});

test('measureLatency: warm-up calls are made but not timed', () => {
  const c = fakeClock();
  const r = measureLatency(c.work('a', [1000, 5, 3, 4, 6, 2]), { warmup: 1, repeats: 5, now: c.now });
  assert.deepEqual(r.runs, [5, 3, 4, 6, 2]);
  assert.equal(r.bestMs, 2);
  assert.equal(r.medianMs, 4);
  assert.equal(r.warmup, 1);
  assert.equal(c.log.length, 6);
});

test('measureLatency: defaults are 1 warm-up + 5 timed calls', () => {
  const c = fakeClock();
  const r = measureLatency(c.work('a', [50, 10, 11, 12, 13, 14, 99]), { now: c.now });
  assert.equal(c.log.length, 6);
  assert.deepEqual(r.runs, [10, 11, 12, 13, 14]);
  assert.equal(r.warmup, 1);
});

test('measureLatency: warmup 0 times every call; several warm-ups are all skipped', () => {
  const c = fakeClock();
  assert.deepEqual(measureLatency(c.work('a', [7, 8, 9]), { warmup: 0, repeats: 3, now: c.now }).runs, [7, 8, 9]);
  const d = fakeClock();
  const r = measureLatency(d.work('b', [100, 100, 100, 1, 2]), { warmup: 3, repeats: 2, now: d.now });
  assert.deepEqual(r.runs, [1, 2]);
  assert.equal(d.log.length, 5);
});

test('measureLatency: minMs repeats calls within a sample and reports ms per call', () => {
  const c = fakeClock();
  const r = measureLatency(c.work('a', [3]), { warmup: 1, repeats: 2, minMs: 10, now: c.now });
  // each sample: 4 calls of 3 ms (12 ≥ 10), 3 ms per call
  assert.deepEqual(r.runs, [3, 3]);
  assert.equal(c.log.length, 1 + 2 * 4);
});

test('measureLatency: counts are validated', () => {
  expectThrows(() => measureLatency(() => {}, { repeats: 0 }), 'repeats must be an integer ≥ 1, got 0');
  expectThrows(() => measureLatency(() => {}, { warmup: -1 }), 'warmup must be an integer ≥ 0, got -1');
  expectThrows(() => measureLatency(() => {}, { repeats: 1.5 }), 'repeats must be an integer ≥ 1, got 1.5');
});

test('measureLatency on the real clock: finite, best ≤ median', () => {
  let s = 0;
  const r = measureLatency(() => {
    for (let i = 0; i < 1e4; i++) s += Math.sqrt(i);
  }, { repeats: 3 });
  assert.ok(s > 0);
  assert.equal(r.runs.length, 3);
  assert.ok(Number.isFinite(r.bestMs) && r.bestMs >= 0 && r.bestMs <= r.medianMs);
});

test('compareLatency: variants run interleaved round by round, warm-ups first and untimed', () => {
  const c = fakeClock();
  const r = compareLatency(
    { A: c.work('A', [1000, 10, 20, 30]), B: c.work('B', [1000, 5, 40, 15]), C: c.work('C', [1000, 10, 10, 10]) },
    { warmup: 1, rounds: 3, now: c.now },
  );
  assert.deepEqual(c.log, ['A', 'B', 'C', 'A', 'B', 'C', 'A', 'B', 'C', 'A', 'B', 'C']);
  assert.deepEqual(r.runs, { A: [10, 20, 30], B: [5, 40, 15], C: [10, 10, 10] });
  assert.deepEqual(r.best, { A: 10, B: 5, C: 10 });
  assert.deepEqual(r.median, { A: 20, B: 15, C: 10 });
});

test('compareLatency: beforeSample runs before every timed sample, untimed, never before warm-ups', () => {
  const c = fakeClock();
  const r = compareLatency(
    { A: c.work('A', [1000, 10, 20]), B: c.work('B', [1000, 5, 40]) },
    {
      warmup: 1,
      rounds: 2,
      now: c.now,
      beforeSample: () => {
        c.log.push('gc');
        c.advance(500); // the hook's own time is not in any sample
      },
    },
  );
  assert.deepEqual(c.log, ['A', 'B', 'gc', 'A', 'gc', 'B', 'gc', 'A', 'gc', 'B']);
  assert.deepEqual(r.runs, { A: [10, 20], B: [5, 40] });
});

test('compareLatency: ratios are reference / variant within each round, not a ratio of medians', () => {
  const c = fakeClock();
  const r = compareLatency({ A: c.work('A', [0, 10, 20, 30]), B: c.work('B', [0, 5, 40, 15]) }, { rounds: 3, now: c.now });
  // per round A/B: 2, 0.5, 2 → median 2 (the ratio of medians would be 20/15)
  assert.deepEqual({ ...r.ratios.B, ci95: undefined }, { median: 2, min: 0.5, max: 2, ci95: undefined });
  assert.deepEqual(r.ratios.A, { median: 1, min: 1, max: 1, ci95: [1, 1] }); // the first key is the default reference
});

test('medianCI: a bootstrap interval of the median that holds the median, narrows with more samples, and is reproducible', () => {
  const noisy = (n: number) => Array.from({ length: n }, (_, i) => 1 + 0.4 * Math.sin(i * 12.9898)); // ±40 % around 1
  const [lo, hi] = medianCI(noisy(25));
  assert.ok(lo <= median(noisy(25)) && median(noisy(25)) <= hi, `${lo} ≤ median ≤ ${hi}`);
  assert.ok(lo < 1 && hi > 1, 'noise around 1 is not called a slowdown or a speed-up');
  const [lo2, hi2] = medianCI(noisy(400));
  assert.ok(hi2 - lo2 < (hi - lo) / 2, `400 samples: width ${hi2 - lo2} vs 25 samples: ${hi - lo}`);
  assert.deepEqual(medianCI(noisy(25)), [lo, hi]);
  // a clear 10 % slowdown with small scatter lies wholly below 1
  const slow = Array.from({ length: 25 }, (_, i) => 0.9 + 0.02 * Math.sin(i));
  assert.ok(medianCI(slow)[1] < 1);
  assert.deepEqual(medianCI([3]), [3, 3]);
  expectThrows(() => medianCI([]), 'medianCI: no samples');
});

test('compareLatency: another reference, defaults, and a bad reference', () => {
  const c = fakeClock();
  const r = compareLatency({ A: c.work('A', [0, 10, 20, 30, 40, 50]), B: c.work('B', [0, 5]) }, { reference: 'B', now: c.now });
  assert.equal(c.log.length, 2 * (1 + 5)); // 1 warm-up + 5 rounds by default
  assert.deepEqual({ ...r.ratios.A, ci95: undefined }, { median: 5 / 30, min: 5 / 50, max: 5 / 10, ci95: undefined }); // B / A per round: 5/10 … 5/50
  assert.deepEqual(r.ratios.B, { median: 1, min: 1, max: 1, ci95: [1, 1] });
  expectThrows(() => compareLatency({ A: () => {} }, { reference: 'Z' }), "compareLatency: reference 'Z' is not one of A");
  expectThrows(() => compareLatency({}), 'compareLatency: no variants');
});

test('compareLatencyAsync: a promise-returning variant is awaited inside its own sample, interleaved with sync ones', async () => {
  const c = fakeClock();
  const sync = c.work('S', [1000, 10, 20, 30]);
  const later = c.work('P', [1000, 7, 8, 9]);
  // like onnxruntime-node's session.run: the work happens one setImmediate after the call
  const asyncWork = () => new Promise<void>((resolve) => setImmediate(() => (later(), resolve())));
  const r = await compareLatencyAsync({ S: sync, P: asyncWork }, { warmup: 1, rounds: 3, now: c.now });
  assert.deepEqual(c.log, ['S', 'P', 'S', 'P', 'S', 'P', 'S', 'P']);
  assert.deepEqual(r.runs, { S: [10, 20, 30], P: [7, 8, 9] });
  assert.deepEqual({ ...r.ratios.P, ci95: undefined }, { median: 20 / 8, min: 10 / 7, max: 30 / 9, ci95: undefined });
  await assert.rejects(compareLatencyAsync({}), (e: Error) => e.message === 'compareLatency: no variants');
});
