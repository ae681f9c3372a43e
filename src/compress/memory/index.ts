/** Memory-augmented LMs: the TRIME loss and `memory.trime`, kNN-LM / TRIME evaluation memory, datastores. */
export * from './trime.ts';
export * from './knn.ts';
export { memoryTrime, lastFfnInput, type TrimeConfig } from './method.ts';
export * from './datastore.ts';
