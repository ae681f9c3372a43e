/** Compression methods behind one interface (method.ts), run as recipes (runner.ts), chosen by module-name globs (select.ts). */
export * from './method.ts';
export * from './select.ts';
export * from './runner.ts';
export * from './structure.ts';
export * from './tasks.ts';
export * as quant from './quant/public.ts';
import './prune/index.ts';
export * as prune from './prune/index.ts';
import './cofi/index.ts';
export * as cofi from './cofi/index.ts';
export * as distill from './distill/index.ts';
export * as share from './share/index.ts';
import './moe/index.ts';
export * as fff from './fff/index.ts';
export * as memory from './memory/index.ts';
