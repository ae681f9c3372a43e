// Kernel dispatch (native/simd.h): SHRINK_ISA=avx512|avx2|portable caps the instruction set the kernels use (read
// once when the addon loads; never above what the CPU has), so one machine tests every path it supports; kernels()
// names the path each family runs, and `shrink info` prints them. Each level runs in its own child process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ADDON_PATH, loadNative, nativeTestSkip, type IsaLevel } from '../../src/backend/native/index.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const skip = nativeTestSkip();
const addon = skip ? null : loadNative();
const LEVELS: IsaLevel[] = ['portable', 'avx2', 'avx512'];
const rank = (l: string) => LEVELS.indexOf(l as IsaLevel);

interface ChildResult {
  info: { isa: IsaLevel; cpuIsa: IsaLevel; isaRequested: string | null; avx2: boolean; x86: boolean };
  kernels: Record<string, string>;
  gemm: number[];
  exp: number[];
  softmax: number[];
  gemv: number[];
}

// One GEMM (odd sizes: edge tiles), one transcendental and one softmax, printed with the info for comparison.
const PROBE = `
  let s = 12345;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) - 0.5;
  const M = 37, N = 53, K = 71, off = new Int32Array([0]);
  const A = Float32Array.from({ length: M * K }, rnd), B = Float32Array.from({ length: K * N }, rnd), C = new Float32Array(M * N);
  a.sgemm(A, B, C, 1, M, N, K, off, off, K, N, false, false, false);
  const x = Float32Array.from({ length: 4096 }, () => rnd() * 20), e = new Float32Array(4096);
  a.unary(2, x, 0, e, 4096, 0, 0);
  const sm = new Float32Array(4096);
  a.softmax(x, 16, 256, sm, false);
  // the fused 4-bit GEMV (woGemm, M ≤ 4): groups of 64 (AVX-512 or AVX2 chunks) and of 16 (AVX2 chunks)
  const gemv = [];
  for (const G of [64, 16]) {
    const Mq = 2, Nq = 37, Kq = 256, codes = Uint8Array.from({ length: Nq * Kq / 2 }, () => (rnd() + 0.5) * 256);
    const sc = Float32Array.from({ length: Nq * Kq / G }, () => 0.01 + rnd() * 0.01), z = Uint8Array.from({ length: Nq * Kq / G }, () => (rnd() + 0.5) * 16);
    const xq = Float32Array.from({ length: Mq * Kq }, rnd), oq = new Float32Array(Mq * Nq);
    a.woGemm(xq, Mq, null, codes, 4, sc, null, z, G, false, Kq, Nq, null, oq);
    gemv.push(...oq);
  }
  console.log(JSON.stringify({ info: a.info(), kernels: a.kernels(), gemm: Array.from(C), exp: Array.from(e), softmax: Array.from(sm), gemv }));
`;

function child(env: Record<string, string>): ChildResult {
  const r = spawnSync(process.execPath, ['-e', `const a = require(${JSON.stringify(ADDON_PATH)});${PROBE}`], { cwd: root, env: { ...process.env, ...env }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildResult;
}

function assertClose(got: number[], want: number[], rtol: number, atol: number, what: string): void {
  assert.equal(got.length, want.length);
  for (let i = 0; i < got.length; i++)
    assert.ok(Math.abs(got[i]! - want[i]!) <= atol + rtol * Math.abs(want[i]!), `${what}[${i}]: ${got[i]} vs ${want[i]}`);
}

test('dispatch(kernels): every family names its path, and info() reports the level in effect', { skip }, () => {
  const k = addon!.kernels();
  for (const fam of ['sgemm', 'int8', 'elementwise', 'reduce', 'nn', 'convert']) assert.ok(typeof k[fam] === 'string' && k[fam]!.length > 0, `kernels().${fam}: ${k[fam]}`);
  const info = addon!.info();
  assert.ok(LEVELS.includes(info.isa) && LEVELS.includes(info.cpuIsa));
  assert.ok(rank(info.isa) <= rank(info.cpuIsa), 'never above the CPU');
  assert.equal(info.avx2, rank(info.isa) >= rank('avx2'));
  if (info.cpu.avx512) assert.ok(info.cpu.avx2, 'AVX-512 implies AVX2 here');
  if (!process.env.SHRINK_ISA) assert.equal(info.isa, info.cpuIsa);
});

test('dispatch(SHRINK_ISA=each level the CPU has): the level is used, the names follow it, the results agree', { skip }, () => {
  const cpu = addon!.info().cpuIsa;
  const results = new Map<IsaLevel, ChildResult>();
  for (const level of LEVELS.filter((l) => rank(l) <= rank(cpu))) {
    const r = child({ SHRINK_ISA: level });
    results.set(level, r);
    assert.equal(r.info.isa, level);
    assert.equal(r.info.isaRequested, level);
    assert.equal(r.info.cpuIsa, cpu);
    const names = Object.entries(r.kernels);
    if (level === 'portable') for (const [f, n] of names) assert.match(n, /^portable/, `${f}: ${n}`);
    if (level === 'avx2') for (const [f, n] of names) assert.doesNotMatch(n, /avx512|vnni|amx/, `${f}: ${n}`);
    if (level !== 'portable') assert.match(r.kernels.elementwise!, /avx2/);
  }
  const base = results.get('portable')!;
  for (const [level, r] of results) {
    assertClose(r.gemm, base.gemm, 1e-5, 1e-5, `sgemm ${level}`);
    assertClose(r.exp, base.exp, 2e-6, 0, `exp ${level}`);
    assertClose(r.softmax, base.softmax, 1e-5, 1e-9, `softmax ${level}`);
    assertClose(r.gemv, base.gemv, 1e-5, 1e-5, `int4 GEMV ${level}`);
  }
});

test('dispatch(SHRINK_ISA above the CPU): capped at what the CPU has', { skip }, () => {
  const r = child({ SHRINK_ISA: 'avx512' });
  assert.equal(r.info.isa, rank(r.info.cpuIsa) < rank('avx512') ? r.info.cpuIsa : 'avx512');
  const n = child({ SHRINK_ISA: 'native' });
  assert.equal(n.info.isa, n.info.cpuIsa);
});

test('dispatch(SHRINK_ISA=bogus): loading the addon and choosing the backend fail with a clear error', { skip }, () => {
  const raw = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(ADDON_PATH)})`], { cwd: root, env: { ...process.env, SHRINK_ISA: 'sse4' }, encoding: 'utf8' });
  assert.notEqual(raw.status, 0);
  assert.match(raw.stderr, /SHRINK_ISA must be 'avx512', 'avx2', 'portable' or 'native' \(unset\), got 'sse4'/);
  const reg = spawnSync(process.execPath, ['--import', 'tsx', '-e', `import('./src/backend/registry.ts').then((m) => m.backend())`], { cwd: root, env: { ...process.env, SHRINK_ISA: 'AVX2', SHRINK_BACKEND: '' }, encoding: 'utf8' });
  assert.notEqual(reg.status, 0);
  assert.match(reg.stderr, /SHRINK_ISA must be 'avx512', 'avx2' or 'portable' .*got 'AVX2'/);
});

test('dispatch(shrink info): prints the ISA, the denormal mode and every kernel family', { skip }, () => {
  const r = spawnSync(process.execPath, ['bin/shrink.js', 'info', '--json'], { cwd: root, env: { ...process.env, SHRINK_BACKEND: '' }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { native: { loaded: boolean; isa: string; denormals: string; kernels: Record<string, string> } };
  assert.equal(j.native.loaded, true);
  assert.deepEqual(j.native.kernels, addon!.kernels());
  assert.equal(j.native.isa, addon!.info().isa);
  const text = spawnSync(process.execPath, ['bin/shrink.js', 'info'], { cwd: root, env: { ...process.env, SHRINK_BACKEND: '' }, encoding: 'utf8' });
  for (const [f, k] of Object.entries(addon!.kernels())) assert.match(text.stdout, new RegExp(`${f}\\s+${k.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  assert.match(text.stdout, /denormals (flushed|kept)/);
});
