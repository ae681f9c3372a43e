/**
 * Seedable random numbers. A Generator is xoshiro128** (32-bit state words, fast in JS) seeded through
 * splitmix32, so the same seed gives the same stream on every machine. Its state can be saved and restored
 * (training checkpoints resume with the exact RNG). `manualSeed(s)` reseeds the default generator, as torch does.
 * Streams are not bit-compatible with torch's Mersenne Twister; tests compare statistics, not values.
 */
export class Generator {
  private s = new Uint32Array(4);
  private spare: number | null = null; // second Box–Muller normal

  constructor(seed = 0) {
    this.manualSeed(seed);
  }

  manualSeed(seed: number): this {
    let x = (Math.floor(seed) >>> 0) ^ 0x9e3779b9;
    for (let i = 0; i < 4; i++) {
      // splitmix32
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if ((this.s[0]! | this.s[1]! | this.s[2]! | this.s[3]!) === 0) this.s[0] = 1;
    this.spare = null;
    return this;
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return r;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  random(): number {
    return ((this.nextU32() >>> 5) * 67108864 + (this.nextU32() >>> 6)) / 9007199254740992;
  }

  /** Standard normal (Box–Muller, both values used). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.random();
    const v = this.random();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Uniform integer in [low, high). */
  randint(low: number, high: number): number {
    const span = high - low;
    if (!(span > 0)) throw new Error(`randint: high (${high}) must be greater than low (${low})`);
    if (span <= 0x100000000) {
      // rejection sampling removes modulo bias
      const lim = Math.floor(0x100000000 / span) * span;
      let x: number;
      do x = this.nextU32();
      while (x >= lim);
      return low + (x % span);
    }
    return low + Math.floor(this.random() * span);
  }

  /** State for checkpoints: plain numbers, JSON-safe. */
  getState(): number[] {
    return [...this.s, this.spare === null ? 0 : 1, this.spare ?? 0];
  }
  setState(state: readonly number[]): this {
    if (state.length !== 6) throw new Error(`Generator.setState: expected 6 numbers, got ${state.length}`);
    for (let i = 0; i < 4; i++) this.s[i] = state[i]! >>> 0;
    this.spare = state[4] ? state[5]! : null;
    return this;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** The default generator used when an op is not given one. */
export const defaultGenerator = new Generator(0);
/** Reseed the default generator (torch.manual_seed). */
export function manualSeed(seed: number): Generator {
  return defaultGenerator.manualSeed(seed);
}
