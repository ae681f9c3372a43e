// Output folders: checkOutDir refuses bad targets with one line naming the path; writeDirAtomic swaps a complete
// folder into place and never leaves a half-written one, even when the writer is killed with SIGKILL mid-fill.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkOutDir, writeDirAtomic } from '../../src/io/outdir.ts';

const root = path.resolve(import.meta.dirname, '../..');
const tmpRoot = () => fs.mkdtempSync(path.join(os.tmpdir(), 'outdir-'));
const siblings = (dir: string, name: string) => fs.readdirSync(dir).filter((f) => f.startsWith(`.${name}.`));

test('checkOutDir accepts a new or empty folder and refuses everything else with one clear message', () => {
  const dir = tmpRoot();
  checkOutDir(path.join(dir, 'new'));
  checkOutDir(path.join(dir, 'a', 'b', 'c')); // missing parents can be created
  fs.mkdirSync(path.join(dir, 'empty'));
  checkOutDir(path.join(dir, 'empty'));
  const full = path.join(dir, 'full');
  fs.mkdirSync(full);
  fs.writeFileSync(path.join(full, 'x'), 'x');
  assert.throws(() => checkOutDir(full), { message: `output folder ${full} exists and is not empty (use --force to replace it)` });
  checkOutDir(full, { force: true });
  const file = path.join(dir, 'afile');
  fs.writeFileSync(file, 'x');
  assert.throws(() => checkOutDir(file), { message: `output folder ${file} exists and is a file, not a folder` });
  assert.throws(() => checkOutDir(file, { force: true }), { message: `output folder ${file} exists and is a file, not a folder` });
  assert.throws(() => checkOutDir(path.join(file, 'x', 'y')), { message: `cannot create output folder ${path.join(file, 'x', 'y')}: ${file} is a file, not a folder` });
  assert.throws(() => checkOutDir('/proc/x'), { message: 'output folder /proc/x is on /proc, a kernel filesystem; choose a folder on a disk' });
  assert.throws(() => checkOutDir('/sys/kernel/x'), { message: 'output folder /sys/kernel/x is on /sys, a kernel filesystem; choose a folder on a disk' });
  assert.throws(() => checkOutDir(''), { message: 'output folder: the path is empty' });
  assert.throws(() => checkOutDir('/'), { message: 'output folder / is the filesystem root; choose a folder below it' });
  assert.throws(() => checkOutDir('.', { force: true }), { message: 'output folder . is the working directory or one of its parents; Shrink will not replace it, even with --force: choose a new folder' });
  assert.throws(() => checkOutDir(path.dirname(process.cwd()), { force: true }), { message: `output folder ${path.dirname(process.cwd())} is the working directory or one of its parents; Shrink will not replace it, even with --force: choose a new folder` });
  assert.throws(() => checkOutDir(os.homedir(), { force: true }), /is (your home folder|the working directory or one of its parents); Shrink will not replace it/);
  if (process.getuid?.() !== 0) {
    const ro = path.join(dir, 'ro');
    fs.mkdirSync(ro, { mode: 0o555 });
    assert.throws(() => checkOutDir(path.join(ro, 'x')), { message: `cannot create output folder ${path.join(ro, 'x')}: ${ro} is not writable` });
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test('writeDirAtomic writes a new folder, replaces an old one only with force, and returns fill\'s result', () => {
  const dir = tmpRoot();
  const out = path.join(dir, 'out');
  const r = writeDirAtomic(out, (tmp) => {
    assert.match(path.basename(tmp), /^\.out\.tmp-\d+-[0-9a-f]{8}$/);
    assert.equal(path.dirname(tmp), dir);
    assert.ok(!fs.existsSync(out), 'out appears only when complete');
    fs.writeFileSync(path.join(tmp, 'a.txt'), 'one');
    return 42;
  });
  assert.equal(r, 42);
  assert.deepEqual(fs.readdirSync(out), ['a.txt']);
  let called = false;
  assert.throws(() => writeDirAtomic(out, () => (called = true)), { message: `output folder ${out} exists and is not empty (use --force to replace it)` });
  assert.equal(called, false, 'refused before any work');
  writeDirAtomic(
    out,
    (tmp) => {
      assert.equal(fs.readFileSync(path.join(out, 'a.txt'), 'utf8'), 'one', 'the old folder stays until the new one is complete');
      fs.writeFileSync(path.join(tmp, 'b.txt'), 'two');
    },
    { force: true },
  );
  assert.deepEqual(fs.readdirSync(out), ['b.txt'], 'old content removed, not merged');
  assert.deepEqual(siblings(dir, 'out'), [], 'no temp or old folders left');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('writeDirAtomic: an error in fill removes the temp folder and leaves out untouched', () => {
  const dir = tmpRoot();
  const out = path.join(dir, 'out');
  fs.mkdirSync(out);
  fs.writeFileSync(path.join(out, 'keep.txt'), 'old');
  assert.throws(
    () =>
      writeDirAtomic(
        out,
        (tmp) => {
          fs.writeFileSync(path.join(tmp, 'half.txt'), 'half');
          throw new Error('disk on fire');
        },
        { force: true },
      ),
    { message: 'disk on fire' },
  );
  assert.deepEqual(fs.readdirSync(out), ['keep.txt']);
  assert.equal(fs.readFileSync(path.join(out, 'keep.txt'), 'utf8'), 'old');
  assert.deepEqual(siblings(dir, 'out'), []);
  assert.throws(() => writeDirAtomic(path.join(dir, 'p'), () => Promise.resolve(1)), { message: 'writeDirAtomic: fill must be synchronous (it returned a promise)' });
  assert.ok(!fs.existsSync(path.join(dir, 'p')));
  assert.deepEqual(siblings(dir, 'p'), []);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('writeDirAtomic: a writer killed with SIGKILL mid-fill leaves out as it was; the next run removes its stale temp', async () => {
  const dir = tmpRoot();
  const out = path.join(dir, 'out');
  fs.mkdirSync(out);
  fs.writeFileSync(path.join(out, 'keep.txt'), 'old');
  const script = path.join(dir, 'writer.ts');
  fs.writeFileSync(
    script,
    `import fs from 'node:fs';
import path from 'node:path';
import { writeDirAtomic } from ${JSON.stringify(path.join(root, 'src/io/outdir.ts'))};
writeDirAtomic(${JSON.stringify(out)}, (tmp) => {
  fs.writeFileSync(path.join(tmp, 'new.txt'), 'half-written');
  process.stdout.write('filling ' + tmp + '\\n');
  for (;;) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000); // a fill that never ends
}, { force: true });
`,
  );
  const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const tmp = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = /filling (.+)\n/.exec(stdout);
      if (m) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`writer exited early (${code}): ${stderr}`)));
  });
  const exited = new Promise((r) => child.on('exit', (_c, sig) => r(sig)));
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');
  assert.deepEqual(fs.readdirSync(out), ['keep.txt'], 'out keeps its old content');
  assert.equal(fs.readFileSync(path.join(out, 'keep.txt'), 'utf8'), 'old');
  assert.ok(fs.existsSync(path.join(tmp, 'new.txt')), 'the killed run left its temp folder');
  assert.match(path.basename(tmp), new RegExp(`^\\.out\\.tmp-${child.pid}-[0-9a-f]{8}$`));
  // a temp folder of a live process (this one) is not touched; the dead writer's is
  const mine = path.join(dir, `.out.tmp-${process.pid}-00000000`);
  fs.mkdirSync(mine);
  writeDirAtomic(out, (t) => fs.writeFileSync(path.join(t, 'new.txt'), 'complete'), { force: true });
  assert.ok(!fs.existsSync(tmp), 'stale temp removed');
  assert.ok(fs.existsSync(mine), "a live process's temp is kept");
  assert.deepEqual(fs.readdirSync(out), ['new.txt']);
  assert.equal(fs.readFileSync(path.join(out, 'new.txt'), 'utf8'), 'complete');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('writeDirAtomic puts back an old folder that a killed run had moved aside', () => {
  const dir = tmpRoot();
  const out = path.join(dir, 'out');
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const old = path.join(dir, `.out.old-${dead.stdout}-0badc0de`);
  fs.mkdirSync(old);
  fs.writeFileSync(path.join(old, 'keep.txt'), 'old');
  // out is missing: the old content is restored, and then (no --force) protected
  assert.throws(() => writeDirAtomic(out, () => 0), { message: `output folder ${out} exists and is not empty (use --force to replace it)` });
  assert.deepEqual(fs.readdirSync(out), ['keep.txt']);
  assert.deepEqual(siblings(dir, 'out'), []);
  fs.rmSync(dir, { recursive: true, force: true });
});
