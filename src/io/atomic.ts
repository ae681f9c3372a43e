/**
 * Atomic writes: data goes to a temporary file in the target's directory, is fsync'ed, then renamed over the
 * target. A crash or Ctrl-C at any point leaves either the old file or the new one, never a torn one.
 */
import fs from 'node:fs';
import path from 'node:path';

/** A fresh temporary path next to `target` (same filesystem, so rename is atomic). */
export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
}

/** Write via a callback that receives an open file descriptor, then fsync and rename. */
export function atomicWrite(target: string, write: (fd: number) => void): void {
  fs.mkdirSync(path.dirname(path.resolve(target)), { recursive: true });
  const tmp = tempPathFor(target);
  let fd: number | null = null;
  try {
    fd = fs.openSync(tmp, 'w');
    write(fd);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, target);
  } catch (e) {
    if (fd !== null) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** Write all of `buf` at the current position of fd. */
export function writeAll(fd: number, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
}

export function atomicWriteFile(target: string, data: string | Uint8Array): void {
  atomicWrite(target, (fd) => writeAll(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data));
}

export function atomicWriteJson(target: string, obj: unknown): void {
  atomicWriteFile(target, JSON.stringify(obj, null, 2) + '\n');
}
