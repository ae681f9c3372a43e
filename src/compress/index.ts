/** Compression methods behind one interface (method.ts), chosen by module-name globs (select.ts). */
export * from './method.ts';
export * from './select.ts';
export * as quant from './quant/public.ts';
