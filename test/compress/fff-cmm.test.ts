// The conditional-matmul kernel of FFF layers (native/fff.cc, fffCmm) against its TypeScript spec (cmmReference)
// and against the masked dense training form, on random trees: every native path this CPU has (AVX-512, AVX2,
// portable; a path the CPU or SHRINK_ISA lacks is skipped with a message), odd widths (vector tails), depth 0,
// parallel trees, both decisions, with and without bias, batch 0 to 70 (thread split); the batched (level by
// level, grouped by node) and per-token descents forced via _fffBatchedMinTokens, bit-identical to each other, at
// batch 1 to 2000, depths 0–9, with a zero and a NaN token; and the argument checks.
//
// Different summation orders may flip a decision whose logit is within float noise of 0; such a token (the
// paths differ and the reference logit at the first difference is tiny) is left out of the comparison, and the
// test asserts it is rare.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, Tensor, noGrad } from '../../src/index.ts';
import { nativeTestSkip } from '../../src/backend/native/index.ts';
import { cmmForward, cmmPaths, cmmReference, fffAddon, fffNodes, type CmmPath, type CmmWeights } from '../../src/compress/fff/cmm.ts';
import { FFFLayer } from '../../src/compress/fff/layer.ts';

const g = new Generator(18);
const rand = (n: number, s = 1) => Float32Array.from({ length: n }, () => s * g.normal());

function randomTree(K: number, O: number, depth: number, P: number, bias: boolean, strict: boolean): CmmWeights {
  const n = P * fffNodes(depth);
  return { K, O, depth, P, strict, w1: rand(n * K, 1 / Math.sqrt(K)), b1: bias ? rand(n, 0.1) : null, w2t: rand(n * O) };
}

/** Reference logit of (token m, tree p, level d) given the reference path. */
function refLogit(w: CmmWeights, x: Float32Array, m: number, p: number, node: number): number {
  const row = p * fffNodes(w.depth) + node;
  let s = 0;
  for (let k = 0; k < w.K; k++) s += x[m * w.K + k]! * w.w1[row * w.K + k]!;
  return s + (w.b1 ? w.b1[row]! : 0);
}

/** Compare out/nodes against the reference; returns how many tokens were near-ties left out. */
function compare(w: CmmWeights, x: Float32Array, M: number, out: Float32Array, nodes: Int32Array, ref: Float32Array, refNodes: Int32Array, what: string): number {
  const L = w.depth + 1;
  let ties = 0;
  for (let m = 0; m < M; m++) {
    let tie = false;
    for (let p = 0; p < w.P && !tie; p++)
      for (let d = 0; d < L; d++) {
        const i = (m * w.P + p) * L + d;
        if (nodes[i] === refNodes[i]) continue;
        const s = refLogit(w, x, m, p, refNodes[i - 1]!); // the parent decided differently
        assert.ok(Math.abs(s) < 1e-4, `${what}: token ${m} tree ${p} level ${d}: node ${nodes[i]} vs reference ${refNodes[i]} with parent logit ${s} (not a near-tie)`);
        tie = true;
        break;
      }
    if (tie) {
      ties++;
      continue;
    }
    for (let o = 0; o < w.O; o++) {
      const a = out[m * w.O + o]!;
      const b = ref[m * w.O + o]!;
      if (!(Math.abs(a - b) <= 1e-5 * (1 + Math.abs(b)) * Math.sqrt(L * w.P))) assert.fail(`${what}: out[${m}, ${o}] = ${a}, reference ${b}`);
    }
  }
  return ties;
}

const CASES: [K: number, O: number, depth: number, P: number][] = [
  [1, 1, 0, 1], [7, 5, 1, 1], [16, 16, 3, 2], [33, 70, 4, 1], [100, 130, 5, 3], [64, 64, 7, 1], [768, 96, 6, 1],
];

const skip = nativeTestSkip();
for (const path of ['avx512', 'avx2', 'portable'] as const) {
  const why = skip || (cmmPaths().includes(path) ? false : `the ${path} CMM path is not available on this CPU (or SHRINK_ISA=${process.env.SHRINK_ISA ?? ''}); has: ${cmmPaths().join(', ')}`);
  describe(`fffCmm native ${path} vs cmmReference`, { skip: why }, () => {
    test('random trees: K, O with vector tails, depth 0–7, 1–3 trees, bias or not, > 0 or ≥ 0, M 0–70', () => {
      let ties = 0;
      let tokens = 0;
      for (const [K, O, depth, P] of CASES)
        for (const bias of [true, false])
          for (const M of [0, 1, 3, 70]) {
            const strict = (K + M) % 2 === 0;
            const w = randomTree(K, O, depth, P, bias, strict);
            const x = rand(M * K);
            const ref = new Float32Array(M * O);
            const refNodes = new Int32Array(M * P * (depth + 1));
            cmmReference(w, x, M, ref, refNodes);
            const out = new Float32Array(M * O).fill(NaN);
            const nodes = new Int32Array(M * P * (depth + 1)).fill(-1);
            cmmForward(w, x, M, out, { path: path as CmmPath, nodes });
            ties += compare(w, x, M, out, nodes, ref, refNodes, `${path} K=${K} O=${O} D=${depth} P=${P} bias=${bias} M=${M}`);
            tokens += M;
          }
      assert.ok(ties <= tokens / 100, `${ties} near-tie tokens of ${tokens}`);
    });

    test('zero tokens: > 0 goes left, ≥ 0 goes right at every bias-free node', () => {
      const w = randomTree(8, 8, 3, 1, false, true);
      const nodes = new Int32Array(4);
      cmmForward(w, new Float32Array(8), 1, new Float32Array(8), { path: path as CmmPath, nodes });
      assert.deepEqual(Array.from(nodes), [0, 1, 3, 7]);
      cmmForward({ ...w, strict: false }, new Float32Array(8), 1, new Float32Array(8), { path: path as CmmPath, nodes });
      assert.deepEqual(Array.from(nodes), [0, 2, 6, 14]);
    });
  });
}

/** The addon's hidden threshold setter (native/fff.cc): batches of at least n tokens descend level by level. */
const batchedMin = (n?: number): number => (fffAddon() as unknown as { _fffBatchedMinTokens(n?: number): number })._fffBatchedMinTokens(n);
const BATCHED_ALWAYS = 0;
const BATCHED_NEVER = 2 ** 40;

for (const path of ['avx512', 'avx2', 'portable'] as const) {
  const why = skip || (cmmPaths().includes(path) ? false : `the ${path} CMM path is not available on this CPU (or SHRINK_ISA=${process.env.SHRINK_ISA ?? ''}); has: ${cmmPaths().join(', ')}`);
  describe(`fffCmm native ${path}: batched (level by level) = per-token = cmmReference`, { skip: why }, () => {
    test('depth 0–9, 1–3 trees, bias or not, > 0 or ≥ 0, M 1–2000, a zero and a NaN token', () => {
      const saved = batchedMin();
      try {
        let ties = 0;
        let tokens = 0;
        for (let depth = 0; depth <= 9; depth++)
          for (const [i, M] of [1, 7, 64, 300, 2000].entries()) {
            const P = 1 + ((depth + i) % 3);
            const bias = (depth + i) % 2 === 0;
            const strict = Math.floor((depth + i) / 2) % 2 === 0;
            const [K, O] = depth % 2 ? [70, 37] : [19, 33];
            const w = randomTree(K, O, depth, P, bias, strict);
            const x = rand(M * K);
            if (M >= 7) {
              x.fill(0, 2 * K, 3 * K); // token 2: all zeros (ties at bias-free nodes: the decision rule)
              x[(M - 1) * K + 3] = NaN; // last token: NaN logits all the way down (left), NaN outputs
            }
            const L = depth + 1;
            const what = `${path} K=${K} O=${O} D=${depth} P=${P} bias=${bias} strict=${strict} M=${M}`;
            const run = (min: number) => {
              batchedMin(min);
              const out = new Float32Array(M * O).fill(-7);
              const nodes = new Int32Array(M * P * L).fill(-1);
              cmmForward(w, x, M, out, { path: path as CmmPath, nodes });
              return { out, nodes };
            };
            const bat = run(BATCHED_ALWAYS);
            const tok = run(BATCHED_NEVER);
            // Same dot products and the same summation order: bit-identical, NaN included.
            assert.deepEqual(bat.nodes, tok.nodes, `${what}: nodes, batched vs per-token`);
            for (let k = 0; k < M * O; k++) if (!Object.is(bat.out[k], tok.out[k])) assert.fail(`${what}: out[${k}] batched ${bat.out[k]} vs per-token ${tok.out[k]}`);
            const ref = new Float32Array(M * O);
            const refNodes = new Int32Array(M * P * L);
            cmmReference(w, x, M, ref, refNodes);
            const finite = M >= 7 ? M - 1 : M;
            ties += compare(w, x, finite, bat.out, bat.nodes, ref, refNodes, what);
            tokens += finite;
            if (M >= 7) {
              const m = M - 1;
              for (let p = 0; p < P; p++) for (let d = 0; d < L; d++) assert.equal(bat.nodes[(m * P + p) * L + d], 2 ** d - 1, `${what}: NaN token goes left`);
              for (let o = 0; o < O; o++) assert.ok(Number.isNaN(bat.out[m * O + o]) && Number.isNaN(ref[m * O + o]), `${what}: NaN token's output`);
            }
          }
        assert.ok(ties <= tokens / 100, `${ties} near-tie tokens of ${tokens}`);
      } finally {
        batchedMin(saved);
      }
    });
  });
}

test('_fffBatchedMinTokens: reads and sets the threshold, rejects bad values', { skip: skip || (fffAddon() ? false : 'no native fffCmm') }, () => {
  const saved = batchedMin();
  try {
    assert.ok(saved >= 1);
    assert.equal(batchedMin(5), 5);
    assert.equal(batchedMin(), 5);
    assert.throws(() => batchedMin(-1), /tokens must be/);
  } finally {
    batchedMin(saved);
  }
});

describe('CMM (eval) = masked dense form (training) of FFFLayer', () => {
  for (const [K, O, depth, P] of [[16, 16, 3, 2], [48, 40, 6, 1], [128, 128, 8, 1]] as const)
    test(`K=${K} O=${O} depth ${depth} P=${P}, batch (2, 9)`, () => {
      const l = new FFFLayer(K, O, depth, { parallelSize: P, generator: new Generator(K + depth) });
      const x = Tensor.randn([2, 9, K], { generator: new Generator(depth) });
      const dense = noGrad(() => l.train().forward(x)).toFloat32Array();
      const cmm = noGrad(() => l.eval().forward(x)).toFloat32Array();
      const w = l.cmmWeights();
      const ref = new Float32Array(18 * O);
      const refNodes = new Int32Array(18 * P * (depth + 1));
      cmmReference(w, x.toFloat32Array(), 18, ref, refNodes);
      const denseNodes = l.route(x.reshape([18, K]));
      const kernelOut = new Float32Array(18 * O);
      const kernelNodes = new Int32Array(18 * P * (depth + 1));
      cmmForward(w, x.toFloat32Array(), 18, kernelOut, { nodes: kernelNodes });
      assert.deepEqual(Array.from(cmm), Array.from(kernelOut), 'eval forward is the CMM kernel');
      const ties = compare(w, x.toFloat32Array(), 18, cmm, kernelNodes, ref, refNodes, 'eval forward vs reference');
      compare(w, x.toFloat32Array(), 18, dense, denseNodes, ref, refNodes, 'masked dense vs reference');
      assert.ok(ties <= 1);
    });
});

test('fffCmm argument checks: short arrays, bad depth, unknown path throw (never read out of bounds)', { skip: skip || (fffAddon() ? false : 'no native fffCmm') }, () => {
  const a = fffAddon()!;
  const w = randomTree(8, 4, 2, 1, true, true);
  const x = rand(16);
  const out = new Float32Array(8);
  const call = (o: Partial<{ x: Float32Array; w1: Float32Array; b1: Float32Array; w2t: Float32Array; out: Float32Array; depth: number; path: number; nodes: Int32Array }>) =>
    a.fffCmm(o.x ?? x, 2, 8, o.w1 ?? w.w1, o.b1 ?? w.b1, o.w2t ?? w.w2t, 4, o.depth ?? 2, 1, true, o.out ?? out, o.path ?? -1, o.nodes ?? null);
  call({});
  assert.throws(() => call({ x: new Float32Array(15) }), /too short/);
  assert.throws(() => call({ out: new Float32Array(7) }), /too short/);
  assert.throws(() => call({ w1: new Float32Array(8 * 6) }), /shorter/);
  assert.throws(() => call({ w2t: new Float32Array(4 * 6) }), /shorter/);
  assert.throws(() => call({ b1: new Float32Array(6) }), /shorter/);
  assert.throws(() => call({ depth: 3 }), /shorter/);
  assert.throws(() => call({ depth: 25 }), /depth/);
  assert.throws(() => call({ path: 7 }), /path must be/);
  assert.throws(() => call({ nodes: new Int32Array(5) }), /nodes must hold/);
  assert.throws(() => a.fffCmm(x, 2, 8, new Float64Array(56) as unknown as Float32Array, null, w.w2t, 4, 2, 1, true, out, -1, null), TypeError);
});
