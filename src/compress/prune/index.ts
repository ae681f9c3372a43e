/** Pruning methods: unstructured magnitude pruning (one-shot and gradual) with sparse storage. */
export * from './sparse.ts';
export * from './magnitude.ts';
export * from './importance.ts';
export * from './apoz.ts';
export * from './structured.ts';
