// The typed messages across the worker boundary: requests and cancellations in, per-sequence events
// and per-step statistics out. Everything here is structured-clone safe.
import type { SuperWeightCoordinate, SwitchPlan } from '../model/switch-plan.js';
import type { SamplingParams } from './sampler.js';
import type { SessionInfo } from './session.js';
import type { WeightsInfo } from './served-weights.js';
import type { SuperActivationReference } from './activation-reference.js';

/** One sequence to generate (an `n > 1` request is n of these). */
export interface GenerationRequest {
  id: string;
  /** Text is tokenized with the model's special tokens (BOS) unless `addSpecialTokens` is false (chat templates add their own). */
  prompt: { text: string; addSpecialTokens?: boolean } | { tokenIds: number[] };
  /** 0 scores the prompt only (with `promptLogprobs`), generating nothing; null runs to the end of the context... */
  maxTokens: number | null;
  /** ...or, with maxTokens null, at most this many tokens (a server's limit), whichever comes first. */
  maxTokensLimit?: number;
  sampling: SamplingParams;
  /** Selects the random stream for the seed, so choices of one request differ. */
  streamIndex: number;
  stop: string[];
  stopTokenIds: number[];
  ignoreEos: boolean;
  minTokens: number;
  /** Top alternatives for each prompt token's logprob (echo); null computes none. */
  promptLogprobs: number | null;
  /** Token ids whose next-token probability is summed at each prompt position (the stop-word mass); absent for none. */
  promptStopWordIds?: number[];
  /**
   * The log-distribution at each prompt position but the last: in-process callers only (the
   * quantization study compares two models' distributions). No API route sets it, so no HTTP request
   * makes the engine build a [T, V] result.
   */
  promptDistributions?: boolean;
  /** Membership of an A/B comparison: the group's sequences generate, then score the baseline's tokens in the worker. */
  comparison?: ComparisonMembership;
  /** Who asked, passed through untouched to the `accepted` event for subscribers such as telemetry. */
  tags?: SequenceTags;
  switchPlan: SwitchPlan;
}

export type FinishReason = 'stop' | 'length' | 'abort';

export interface ComparisonMembership {
  /** Shared by the group's sequences (one per switch state). */
  group: string;
  /** 0 is the baseline, whose tokens every member scores. */
  index: number;
  size: number;
  /** Token ids whose probability is summed per scored position. */
  stopWordIds: number[];
}

/** What a comparison member's switch state makes of the baseline's tokens, one entry per baseline token. */
export interface ComparisonScores {
  baselineTokenLogprobs: number[];
  /** KL(baseline || this state) of the next-token distributions, in nats. */
  klDivergence: number[];
  stopWordMass: number[];
}

export interface SequenceTags {
  /** The response id, or the client's X-Request-Id. */
  requestId: string;
  choice: number;
}

export type EngineErrorKind = 'invalid_request' | 'context_length_exceeded' | 'engine_failure';

export interface TokenAlternative {
  tokenId: number;
  token: string;
  logprob: number;
}

export interface LayerActivation {
  layer: number;
  inputMax: number;
  inputChannel: number;
  inputPosition: number;
  outputMax: number;
  outputChannel: number;
  outputPosition: number;
}

export interface SuperActivationValue extends SuperWeightCoordinate {
  /** Signed down_proj output at (position of largest magnitude in the step, row). */
  value: number;
  position: number;
}

/** What the taps saw for one sequence in one step. */
export interface ActivationFrame {
  phase: 'prefill' | 'decode';
  step: number;
  /** First and one-past-last token position of the step. */
  positions: [number, number];
  layers: LayerActivation[];
  superActivations: SuperActivationValue[];
}

export type SequenceEvent =
  /** Validated and queued; comes before any step runs, so a server can open its stream. */
  | {
      type: 'accepted';
      id: string;
      promptTokens: number;
      /** Original value of every switched weight and known super weight, by "layer:row:col". */
      weightValues: Record<string, number>;
      /** The switch this sequence runs under, so subscribers label it by what is applied, tagged or not. */
      switchPlan: SwitchPlan;
      tags?: SequenceTags;
    }
  | {
      type: 'prompt';
      id: string;
      promptIds: number[];
      /** The prompt decoded (special tokens skipped), for echo. */
      promptText: string;
      promptTokens: string[];
      /** Per prompt token (the first has none): its logprob and the top alternatives. */
      promptLogprobs?: ({ logprob: number; top: TokenAlternative[] } | null)[];
      /** Per prompt position but the last, the probability the next token is one of `promptStopWordIds`. */
      stopWordMass?: number[];
      /** With `promptDistributions`: per prompt position but the last, log-probabilities over the vocabulary. */
      distributions?: Float32Array[];
    }
  | {
      type: 'token';
      id: string;
      tokenId: number;
      token: string;
      /** Text the client may see now (held back while it may be part of a stop string). */
      text: string;
      logprob: number;
      top: TokenAlternative[];
      frame?: ActivationFrame;
    }
  | {
      type: 'finish';
      id: string;
      reason: FinishReason;
      /** Text held back until the end. */
      text: string;
      stopString?: string;
      promptTokens: number;
      completionTokens: number;
      /** For a comparison member: its state's scores of the baseline's tokens. */
      comparison?: ComparisonScores;
    }
  /**
   * The request itself is wrong (`invalid_request`, `context_length_exceeded`) or the engine could not
   * serve it; `field` says which part of a wrong request (the prompt unless it is the switch plan), or
   * 'comparison' for a comparison member ended because another state was refused or failed.
   */
  | { type: 'error'; id: string; kind: EngineErrorKind; message: string; field?: 'prompt' | 'switch' | 'comparison' };

export interface StepStats {
  /** 'prefill' when the step fed prompt tokens (decodes may share it), else 'decode'. */
  phase: 'prefill' | 'decode';
  /** Cache rows the step computed (decoding and prefilling). */
  batchSize: number;
  /** Tokens fed (one per decoding row plus the prompt chunks). */
  tokens: number;
  decodeRows: number;
  prefillRows: number;
  /** Prompt tokens fed (the chunks, without padding). */
  prefillTokens: number;
  runMs: number;
  totalMs: number;
  /** Rows by switch state, for the observability of mixed batches. */
  switchedRows: number;
}

/** Sequences in the engine after an update. */
export interface EngineLoad {
  running: number;
  waiting: number;
}

/** What the engine reports after a step or a cancellation. */
export interface EngineUpdate {
  events: SequenceEvent[];
  step?: StepStats;
  load: EngineLoad;
}

export interface EngineInfo {
  modelDir: string;
  /** Milliseconds of each load phase, for the log (where a slow start goes). */
  loadMs: { checkpoint: number; tokenizer: number; graph: number; session: number; total: number };
  modelId: string;
  architecture: string;
  parameterCount: number;
  contextLength: number;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  session: SessionInfo;
  weights: WeightsInfo;
  /** The detection prompt's super activations at load, served and float32 (absent without known super weights or taps). */
  superActivationReference?: SuperActivationReference;
  knownSuperWeights: (SuperWeightCoordinate & { originalValue: number })[];
  bosId?: number;
  eosIds: number[];
  bosToken?: string;
  eosToken?: string;
  chatTemplate?: string;
  /** Stop words that are single tokens here, for the stop-word shift. */
  stopWords: { words: string[]; ids: number[] };
}

export type WorkerInbound =
  | { type: 'submit'; request: GenerationRequest }
  | { type: 'cancel'; id: string }
  /** Whether anyone (a WebSocket subscriber) wants decode steps' activation frames; prefill frames always come. */
  | { type: 'frames'; decode: boolean }
  | { type: 'shutdown' }
  /** Ends the thread at once with this exit code, as a crash would (fault drills); handled between steps. */
  | { type: 'exit'; code: number };

export type WorkerOutbound =
  | { type: 'ready'; info: EngineInfo }
  | { type: 'load-error'; message: string }
  | { type: 'warning'; message: string }
  | { type: 'log'; message: string }
  | ({ type: 'update' } & EngineUpdate)
  | { type: 'closed' };
