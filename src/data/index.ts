export { loadGlue, GLUE_DIR, type GlueTask, type GlueSplit, type GlueMetric } from './glue.ts';
export { collate, BatchSampler, maskTokens, type Batch, type Encoded, type LoaderState } from './batch.ts';
