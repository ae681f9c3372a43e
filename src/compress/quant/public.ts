/** Quantization: quantizers, quantized modules, model passes (RTN, GPTQ, QAT), checkpoints and reports. */
export { QuantLinear, QuantEmbedding, QUANT_SCHEMES, dequantize, quantizedBytes, type QuantScheme, type QuantizedWeight } from './modules.ts';
export { quantizeWeight, qparams, parseGranularity, INT4_FORMULAS, type WeightQuantSpec, type Granularity, type Int4Formula } from './rtn.ts';
export { gptqQuantize, accumulateHessian } from './gptq-adapter.ts';
export { quantizeModel, type QuantizeOptions, type QuantizeReport } from './apply.ts';
export { prepareQat, convertQat, FakeQuantLinear } from './qat.ts';
export { saveQuantized, describeQuantized } from './format.ts';
export { quantizeFolder, castFolder } from './pretrained.ts';
export { layerErrors, formatLayerErrors } from './report.ts';
export { quantRtn, quantGptq, quantQat } from './method.ts';
export { RangeObserver, observeInputs, OBSERVERS, type ObserverKind } from './calibrate.ts';
