// The addon must compile off x86 (arm64…): every native/*.cc is syntax-checked as a non-x86 target sees it
// (-DSHRINK_NO_X86: no <immintrin.h>, no AVX2/FMA/F16C code; see native/simd.h), so AVX2 code added without its
// `#if SHRINK_X86` guard fails here rather than on the first arm64 install. Uses the C++ compiler that builds the
// addon ($CXX or g++). The portable kernels themselves are tested at run time with setSimd(false) (quant-native,
// native-parity) and setGemmKernel('portable') (gemm).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

test('portableBuild(target=non-x86): every native source compiles without the x86 SIMD code', () => {
  const r = spawnSync(process.execPath, ['scripts/build-native.cjs', '--check-portable'], { cwd: root, encoding: 'utf8', env: { ...process.env, SHRINK_SKIP_NATIVE_BUILD: '' } });
  const files = (r.stdout.match(/syntax check of native\/\S+\.cc: ok/g) ?? []).length;
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.ok(files >= 9, `expected every native/*.cc to be checked, saw ${files}:\n${r.stdout}`);
});
