// vLLM-named serving metrics (prefix swserve_), fed from engine updates. A request with n choices
// is n sequences here, each timed on its own. Times are when the main thread receives an update,
// which is what a client of this process sees.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { EngineErrorKind, EngineUpdate, FinishReason, SequenceEvent } from '../engine/protocol.js';
import { BATCH_SIZE_BUCKETS, INTER_TOKEN_BUCKETS, oneTwoFiveBuckets, REQUEST_LATENCY_BUCKETS, STEP_DURATION_BUCKETS, TTFT_BUCKETS } from './metric-buckets.js';

interface Timing {
  /** Seconds (performance clock) when the engine accepted the sequence. */
  arrival: number;
  firstToken?: number;
  lastToken?: number;
}

export type UpdateObserver = (update: EngineUpdate, nowSeconds: number) => void;

// Every value these labels take, so each series exists (at zero) from the first scrape.
const FINISH_REASONS: Record<FinishReason, true> = { stop: true, length: true, abort: true };
const FAILURE_KINDS: Record<EngineErrorKind, true> = { invalid_request: true, context_length_exceeded: true, engine_failure: true };
const PHASES = ['prefill', 'decode'] as const;

export function servingMetrics(registry: Registry, contextLength: number): UpdateObserver {
  const registers = [registry];
  const running = new Gauge({ name: 'swserve_num_requests_running', help: 'Sequences in the running batch.', registers });
  const waiting = new Gauge({ name: 'swserve_num_requests_waiting', help: 'Sequences waiting for a prefill.', registers });
  const ttft = new Histogram({ name: 'swserve_time_to_first_token_seconds', help: 'Time from acceptance to the first generated token.', buckets: TTFT_BUCKETS, registers });
  const itl = new Histogram({ name: 'swserve_inter_token_latency_seconds', help: 'Time between consecutive tokens of one sequence.', buckets: INTER_TOKEN_BUCKETS, registers });
  const e2e = new Histogram({ name: 'swserve_e2e_request_latency_seconds', help: 'Time from acceptance to the end of a sequence.', buckets: REQUEST_LATENCY_BUCKETS, registers });
  const decode = new Histogram({ name: 'swserve_request_decode_time_seconds', help: 'Time from the first to the last token of a sequence.', buckets: REQUEST_LATENCY_BUCKETS, registers });
  const promptTokens = new Counter({ name: 'swserve_prompt_tokens_total', help: 'Prompt tokens prefilled (each choice of an n > 1 request prefills its own copy).', registers });
  const generationTokens = new Counter({ name: 'swserve_generation_tokens_total', help: 'Tokens generated.', registers });
  const tokenBuckets = oneTwoFiveBuckets(contextLength);
  const promptLength = new Histogram({ name: 'swserve_request_prompt_tokens', help: 'Prompt length of finished sequences.', buckets: tokenBuckets, registers });
  const outputLength = new Histogram({ name: 'swserve_request_generation_tokens', help: 'Generated tokens of finished sequences.', buckets: tokenBuckets, registers });
  const success = new Counter({ name: 'swserve_request_success_total', help: 'Finished sequences by finish reason.', labelNames: ['finished_reason'], registers });
  const failures = new Counter({ name: 'swserve_request_failure_total', help: 'Sequences the engine refused or failed, by kind.', labelNames: ['kind'], registers });
  const batchSize = new Histogram({ name: 'swserve_engine_batch_size', help: 'Sequences in one engine step.', labelNames: ['phase'], buckets: BATCH_SIZE_BUCKETS, registers });
  const stepTime = new Histogram({ name: 'swserve_engine_step_duration_seconds', help: 'Wall time of one engine step (packing, session.run, sampling).', labelNames: ['phase'], buckets: STEP_DURATION_BUCKETS, registers });

  for (const finished_reason of Object.keys(FINISH_REASONS)) success.inc({ finished_reason }, 0);
  for (const kind of Object.keys(FAILURE_KINDS)) failures.inc({ kind }, 0);
  for (const phase of PHASES) {
    batchSize.zero({ phase });
    stepTime.zero({ phase });
  }

  const timings = new Map<string, Timing>();
  const onEvent = (event: SequenceEvent, now: number): void => {
    if (event.type === 'accepted') {
      timings.set(event.id, { arrival: now });
      return;
    }
    const t = timings.get(event.id);
    if (event.type === 'prompt') {
      promptTokens.inc(event.promptIds.length);
    } else if (event.type === 'token') {
      generationTokens.inc();
      if (!t) return;
      if (t.lastToken === undefined) ttft.observe(now - t.arrival);
      else itl.observe(now - t.lastToken);
      t.firstToken ??= now;
      t.lastToken = now;
    } else if (event.type === 'finish') {
      success.inc({ finished_reason: event.reason });
      promptLength.observe(event.promptTokens);
      outputLength.observe(event.completionTokens);
      if (t) e2e.observe(now - t.arrival);
      if (t?.firstToken !== undefined && t.lastToken !== undefined) decode.observe(t.lastToken - t.firstToken);
      timings.delete(event.id);
    } else {
      failures.inc({ kind: event.kind });
      timings.delete(event.id);
    }
  };

  return (update, now) => {
    running.set(update.load.running);
    waiting.set(update.load.waiting);
    const step = update.step;
    if (step) {
      batchSize.observe({ phase: step.phase }, step.batchSize);
      stepTime.observe({ phase: step.phase }, step.totalMs / 1000);
    }
    for (const event of update.events) onEvent(event, now);
  };
}
