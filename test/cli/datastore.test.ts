// `shrink datastore build`: the output folder is checked before any work and written whole or not at all — a run
// killed with SIGKILL leaves no folder, a rerun builds it, and an existing datastore is kept without --force.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { run, start, tmpDir, waitFor } from './helpers.ts';

const model = 'data/models/stories260K';
const corpus = 'data/tinystories-samples/stories260K-samples.txt';

test('shrink datastore build: killed → no output folder; rerun → a whole datastore; existing → refused without --force', async () => {
  const dir = tmpDir('datastore-');
  const out = path.join(dir, 'ds');
  const a = start(['datastore', 'build', model, '--corpus', corpus, '-o', out, '--block-size', '32']);
  // the temporary sibling appears once the model and text are loaded; kill while it is being filled
  await waitFor(() => fs.readdirSync(dir).some((n) => n.startsWith('.ds.tmp-')), a.done, 'the temporary folder');
  a.child.kill('SIGKILL');
  assert.equal((await a.done).signal, 'SIGKILL');
  assert.ok(!fs.existsSync(out), 'a killed build left an output folder');
  const b = run('datastore', 'build', model, '--corpus', corpus, '-o', out, '--json');
  assert.equal(b.status, 0, b.stderr);
  const meta = JSON.parse(fs.readFileSync(path.join(out, 'datastore.json'), 'utf8')) as { count: number; dim: number };
  assert.ok(meta.count > 0);
  assert.equal(fs.statSync(path.join(out, 'keys.f16')).size, meta.count * meta.dim * 2);
  assert.equal(fs.statSync(path.join(out, 'vals.i32')).size, meta.count * 4);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['ds'], 'stale temporary folders were cleaned');
  const c = run('datastore', 'build', model, '--corpus', corpus, '-o', out);
  assert.equal(c.status, 1);
  assert.equal(c.stderr, `shrink: output folder ${out} exists and is not empty (use --force to replace it)\n`);
  fs.rmSync(dir, { recursive: true, force: true });
});
