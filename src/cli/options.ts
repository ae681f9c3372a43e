/** Shared option parsers for the CLI's commands. */

/** A commander parser for a numeric flag in [min, max] (integers only with `integer`); errors name the flag. */
export function num(name: string, min: number, max = Infinity, integer = false) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n)))
      throw new Error(`--${name} must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got '${v}'`);
    return n;
  };
}
