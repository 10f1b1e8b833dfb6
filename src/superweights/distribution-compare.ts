// Comparisons of next-token distributions given as log-probabilities over the vocabulary.

/** KL(P || Q) in nats. */
export function klDivergence(logP: Float32Array, logQ: Float32Array): number {
  let kl = 0;
  for (let i = 0; i < logP.length; i++) {
    const lp = logP[i]!;
    if (lp === -Infinity) continue;
    kl += Math.exp(lp) * (lp - logQ[i]!);
  }
  return Math.max(0, kl);
}
