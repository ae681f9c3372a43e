/**
 * Atomic writes: data goes to a temporary file `<target>.tmp-<pid>-<random>` in the target's directory (same
 * filesystem, so the rename is atomic), is fsynced, then renamed over the target, and the directory is fsynced so
 * the rename itself is durable. A crash or Ctrl-C at any point leaves either the old file or the new one, never a
 * torn one; on any error the temp file is removed and the error rethrown.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** Largest single write; node's fs calls refuse lengths over 2 GiB. */
const IO_CHUNK = 1 << 30;

/** A fresh temporary path next to `target`. */
export function tempPathFor(target: string): string {
  return `${target}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
}

/** Write through a callback that receives an open file descriptor, then fsync and rename over `target`. */
export function atomicWrite(target: string, write: (fd: number) => void): void {
  fs.mkdirSync(path.dirname(path.resolve(target)), { recursive: true });
  const tmp = tempPathFor(target);
  let fd: number | null = null;
  try {
    fd = fs.openSync(tmp, 'wx');
    write(fd);
    fs.fsyncSync(fd);
    const closing = fd;
    fd = null;
    fs.closeSync(closing);
    fs.renameSync(tmp, target);
  } catch (e) {
    if (fd !== null) {
      try {
        fs.closeSync(fd);
      } catch {
        // the original error matters more
      }
    }
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  syncDir(path.dirname(path.resolve(target)));
}

/** fsync a directory so a rename in it survives a crash (not possible on every platform: best effort). */
export function syncDir(dir: string): void {
  let fd: number | null = null;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Windows cannot open directories; some filesystems refuse fsync on them.
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

/** Write all of `buf` at the current position of fd (in chunks of at most 1 GiB, retrying short writes). */
export function writeAll(fd: number, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off, Math.min(IO_CHUNK, buf.length - off));
}

/** Atomically replace `target` with `data` (a string is written as UTF-8). */
export function atomicWriteFile(target: string, data: string | Uint8Array): void {
  atomicWrite(target, (fd) => writeAll(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data));
}

/** Atomically replace `target` with `obj` as pretty JSON (2-space indent, trailing newline). */
export function atomicWriteJson(target: string, obj: unknown): void {
  const text = JSON.stringify(obj, null, 2);
  if (text === undefined) throw new Error(`atomicWriteJson ${target}: value is not JSON-serializable (${typeof obj})`);
  atomicWriteFile(target, text + '\n');
}
