// Histogram bounds sized for LLM serving, not web requests. The latency families are vLLM's
// (vllm/v1/metrics/loggers.py), so dashboards and alerts built for vLLM read swserve the same way.

/** vLLM's time-to-first-token bounds, 1 ms .. 2560 s. */
export const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0];

/**
 * vLLM's inter-token bounds (10 ms .. 80 s), with 1, 2.5 and 5 ms below them: small models on a
 * CPU decode faster than vLLM's first bound, and would otherwise all land in one bucket.
 */
export const INTER_TOKEN_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0];

/** vLLM's request-lifetime bounds (e2e, queue, prefill, decode), 0.3 s .. 7680 s. */
export const REQUEST_LATENCY_BUCKETS = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0];

/** One engine step: a decode step of a small model takes a millisecond, a long prefill of a big one seconds. */
export const STEP_DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/** Sequences in one step: powers of two, as batch limits usually are. */
export const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/** vLLM's build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, ... up to `max` (token counts). */
export function oneTwoFiveBuckets(max: number): number[] {
  const buckets: number[] = [];
  for (let exponent = 1; ; exponent *= 10) {
    for (const mantissa of [1, 2, 5]) {
      if (mantissa * exponent > max) return buckets;
      buckets.push(mantissa * exponent);
    }
  }
}

/**
 * Activation magnitudes, 1-2-5 steps from 0.1 to 10000: an ablated super activation sits near the
 * bottom, Llama-7B's (~1300-2500, arXiv 2411.07191) near the top.
 */
export const ACTIVATION_BUCKETS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];
