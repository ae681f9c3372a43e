export { loadGlue, glueFile, GLUE_DIR, DATA_DIR, GLUE_TASKS, type GlueTask, type GlueSplit, type GlueMetric } from './glue.ts';
export {
  loadText, loadWikiText, wikiTextLines, wikiTextFile, wordTokens, loadTinyShakespeare, charVocab, chunkTokens, causalLabels,
  type WikiTextSplit, type CharVocab, type TokenBlock,
} from './text.ts';
export {
  collate, BatchSampler, DataLoader,
  type Batch, type Encoded, type CollateOptions, type LoaderState, type SamplerOptions, type DataLoaderOptions,
} from './batch.ts';
export { maskTokens, wholeWordMask, continuationTable, type MaskOptions, type WholeWordMaskOptions } from './mlm.ts';
export { calibrationBatches, CALIBRATION_SOURCES, type CalibrationOptions } from './calibration.ts';
