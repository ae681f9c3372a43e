/**
 * Deterministic mutation engine for the fuzz targets: a seeded PRNG, byte-level mutations (bit flips, interesting
 * values, inserts, deletes, splices, 64-bit length rewrites) and JSON-aware mutations (replace, delete or add a
 * field anywhere in a document with a value from a pool of hostile values: huge and negative numbers, fractions,
 * 10^15-element shapes, prototype keys, deep nesting, wrong types).
 */

/** mulberry32: small, fast, seedable. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

const INTERESTING_U8 = [0, 1, 0x7f, 0x80, 0xff, 0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x3a, 0x2c, 0x20, 0x2d, 0x30, 0x39, 0x65];
const INTERESTING_U64 = [0n, 1n, 7n, 8n, 0xffn, 0xffffffffn, 0x100000000n, 2n ** 53n, 2n ** 63n - 1n, 2n ** 64n - 1n, 100_000_000n, 100_000_001n];

/** One to four byte-level mutations of `src` (a new array). */
export function mutateBytes(rng: Rng, src: Uint8Array, others: readonly Uint8Array[] = []): Uint8Array {
  let b: Uint8Array = Uint8Array.from(src);
  const rounds = 1 + rng.int(4);
  for (let r = 0; r < rounds; r++) {
    const op = rng.int(9);
    const pos = b.length ? rng.int(b.length) : 0;
    switch (op) {
      case 0: if (b.length) b[pos]! ^= 1 << rng.int(8); break;
      case 1: if (b.length) b[pos] = rng.pick(INTERESTING_U8); break;
      case 2: if (b.length) b[pos] = rng.int(256); break;
      case 3: { // insert random bytes
        const n = 1 + rng.int(8);
        const ins = Uint8Array.from({ length: n }, () => (rng.chance(0.5) ? rng.pick(INTERESTING_U8) : rng.int(256)));
        b = concat(b.subarray(0, pos), ins, b.subarray(pos));
        break;
      }
      case 4: { // delete a range
        const n = 1 + rng.int(Math.max(1, Math.min(32, b.length - pos)));
        b = concat(b.subarray(0, pos), b.subarray(Math.min(b.length, pos + n)));
        break;
      }
      case 5: b = b.subarray(0, rng.int(b.length + 1)).slice(); break; // truncate
      case 6: { // duplicate a range
        const n = 1 + rng.int(16);
        b = concat(b.subarray(0, pos), b.subarray(pos, pos + n), b.subarray(pos));
        break;
      }
      case 7: { // overwrite 8 bytes with an interesting little-endian u64 (safetensors' header length lives at 0)
        const at = rng.chance(0.6) ? 0 : pos;
        if (at + 8 <= b.length) new DataView(b.buffer, b.byteOffset).setBigUint64(at, rng.pick(INTERESTING_U64), true);
        break;
      }
      case 8: { // splice with another seed
        if (!others.length) break;
        const o = rng.pick(others);
        const at = rng.int(o.length + 1);
        b = concat(b.subarray(0, pos), o.subarray(at));
        break;
      }
    }
  }
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Hostile JSON values (a fresh copy each call; deep nesting built lazily). */
export function hostileValue(rng: Rng): unknown {
  const k = rng.int(30);
  switch (k) {
    case 0: return 0;
    case 1: return -1;
    case 2: return 1e15;
    case 3: return 2 ** 53;
    case 4: return 1.5;
    case 5: return 1e308;
    case 6: return -0;
    case 7: return '';
    case 8: return 'x';
    case 9: return null;
    case 10: return true;
    case 11: return [];
    case 12: return {};
    case 13: return [1e15];
    case 14: return [1e5, 1e5, 1e5];
    case 15: return [2 ** 31, 2 ** 31];
    case 16: return [0, 2 ** 53 - 1];
    case 17: return JSON.parse('{"__proto__": {"polluted": 1}, "type": "none"}'); // an own '__proto__' key
    case 18: return '__proto__';
    case 19: return 'constructor';
    case 20: return '../x';
    case 21: return 2 ** 31 - 1;
    case 22: return 3;
    case 23: return 4;
    case 24: return 8;
    case 25: return 2;
    case 26: return [1, 2];
    case 27: { let v: unknown = 1; for (let i = 0; i < 200; i++) v = [v]; return v; }
    case 28: return 'int4';
    default: return rng.int(100);
  }
}

const HOSTILE_KEYS = ['__proto__', 'constructor', 'toString', 'prototype', '', 'type', 'shape', 'bits', 'weight', 'dtype', 'data_offsets', 'shares', 'modules', 'steps', 'method'];

type Json = unknown;

/** All [container, key] slots of a JSON document (root excluded). */
function slots(doc: Json, out: [Record<string, unknown> | unknown[], string | number][] = []): typeof out {
  if (Array.isArray(doc)) doc.forEach((v, i) => { out.push([doc, i]); slots(v, out); });
  else if (doc !== null && typeof doc === 'object') for (const [k, v] of Object.entries(doc)) { out.push([doc as Record<string, unknown>, k]); slots(v, out); }
  return out;
}

/** Structured mutations of a parsed JSON document, in place where possible; returns the new root. */
export function mutateJson(rng: Rng, doc: Json, rounds = 1 + rng.int(3)): Json {
  for (let r = 0; r < rounds; r++) {
    const all = slots(doc);
    if (!all.length || rng.chance(0.03)) return hostileValue(rng);
    const [c, k] = rng.pick(all);
    const op = rng.int(7);
    if (Array.isArray(c)) {
      const i = k as number;
      if (op === 0) c.splice(i, 1);
      else if (op === 1) c.push(hostileValue(rng));
      else if (op === 2) c.splice(i, 0, structuredClone(c[i]));
      else c[i] = op === 3 && typeof c[i] === 'number' ? (c[i] as number) + rng.pick([-1, 1, 2 ** 32, 0.5]) : hostileValue(rng);
    } else {
      const o = c as Record<string, unknown>;
      const key = k as string;
      if (op === 0) delete o[key];
      else if (op === 1) Object.defineProperty(o, rng.pick(HOSTILE_KEYS), { value: hostileValue(rng), enumerable: true, writable: true, configurable: true });
      else if (op === 2) {
        const other = rng.pick(all)[0];
        if (other !== o) Object.defineProperty(o, key, { value: structuredClone(Array.isArray(other) ? other : { ...other }), enumerable: true, writable: true, configurable: true });
      } else if (op === 3 && typeof o[key] === 'number') o[key] = (o[key] as number) + rng.pick([-1, 1, 2 ** 32, 0.5, -2]);
      else if (op === 4 && typeof o[key] === 'string') o[key] = rng.pick(['', 'x', `${o[key]}x`, 'linear', 'none', 'fields', 'embedding', 'conv1d', 'int4', 'int8', 'quant.rtn', 'I64', 'BOOL']);
      else o[key] = hostileValue(rng);
    }
  }
  return doc;
}

/** JSON text with occasional formatting variants (pretty, duplicate keys, trailing garbage). */
export function jsonText(rng: Rng, doc: Json): string {
  let s = JSON.stringify(doc, null, rng.chance(0.3) ? 2 : undefined) ?? 'null';
  if (rng.chance(0.03) && s.startsWith('{"')) {
    const m = /^\{("(?:[^"\\]|\\.)*":[^,{}[\]]*),/.exec(s);
    if (m) s = `{${m[1]},${s.slice(1)}`; // a duplicate key
  }
  if (rng.chance(0.02)) s += rng.pick([' ', '}', 'x', '\u0000']);
  return s;
}
