/**
 * Task metrics as GLUE reports them: accuracy (SST-2, RTE), F1 of the positive class (MRPC, also with accuracy),
 * Matthews correlation (CoLA); perplexity from a summed negative log-likelihood.
 */

function checkLengths(name: string, preds: ArrayLike<number>, labels: ArrayLike<number>): void {
  if (preds.length !== labels.length) throw new Error(`${name}: ${preds.length} predictions but ${labels.length} labels`);
  if (preds.length === 0) throw new Error(`${name}: no examples`);
}

export function accuracy(preds: ArrayLike<number>, labels: ArrayLike<number>): number {
  checkLengths('accuracy', preds, labels);
  let ok = 0;
  for (let i = 0; i < preds.length; i++) if (preds[i] === labels[i]) ok++;
  return ok / preds.length;
}

export interface Confusion {
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

/** Binary confusion counts with `positive` as the positive label. */
export function confusion(preds: ArrayLike<number>, labels: ArrayLike<number>, positive = 1): Confusion {
  checkLengths('confusion', preds, labels);
  const c = { tp: 0, fp: 0, tn: 0, fn: 0 };
  for (let i = 0; i < preds.length; i++) {
    const p = preds[i] === positive;
    const l = labels[i] === positive;
    if (p && l) c.tp++;
    else if (p) c.fp++;
    else if (l) c.fn++;
    else c.tn++;
  }
  return c;
}

/** F1 of the positive class (sklearn f1_score, binary); 0 when there are no true or predicted positives. */
export function f1(preds: ArrayLike<number>, labels: ArrayLike<number>, positive = 1): number {
  const { tp, fp, fn } = confusion(preds, labels, positive);
  return tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
}

/** Matthews correlation coefficient (sklearn matthews_corrcoef, binary); 0 when undefined. */
export function matthews(preds: ArrayLike<number>, labels: ArrayLike<number>): number {
  const { tp, fp, tn, fn } = confusion(preds, labels, 1);
  const den = Math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn));
  return den === 0 ? 0 : (tp * tn - fp * fn) / den;
}

/** exp(total NLL / tokens). */
export function perplexity(totalNll: number, tokens: number): number {
  if (!(tokens > 0)) throw new Error(`perplexity: token count must be positive, got ${tokens}`);
  return Math.exp(totalNll / tokens);
}

export type MetricName = 'accuracy' | 'f1' | 'matthews';
export function computeMetric(name: MetricName, preds: ArrayLike<number>, labels: ArrayLike<number>): number {
  switch (name) {
    case 'accuracy':
      return accuracy(preds, labels);
    case 'f1':
      return f1(preds, labels);
    case 'matthews':
      return matthews(preds, labels);
  }
}
