/** Fast feedforward layers (UltraFastBERT's FFF, fastfeedforward's FFF), their CMM inference kernel, and `fff.ultrafast`. */
export * from './cmm.ts';
export * from './layer.ts';
export * from './method.ts';
