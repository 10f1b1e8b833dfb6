// One sequence's state between steps: its tokens, how much of its prompt is cached, what its prompt
// chunks reported so far, sampling state, streamed text and why it ends.
import { coordinateId } from '../model/switch-plan.js';
import { TapAccumulator } from './activation-frames.js';
import type { FinishReason, GenerationRequest, TokenAlternative } from './protocol.js';
import type { Schedulable } from './scheduler.js';
import { createDetokenizer, createStopMatcher, type IncrementalDetokenizer, type StopMatcher } from './detokenizer.js';
import { createRng, randomSeed, type Rng } from './rng.js';
import { createPenaltyState, createSamplerScratch, recordOutputToken, type SamplerScratch, type SamplingParams } from './sampler.js';
import type { TextTokenizer } from './tokenizer.js';

export type PromptLogprob = { logprob: number; top: TokenAlternative[] } | null;

export class Sequence implements Schedulable {
  readonly kind = 'sequence';
  readonly width = 1;
  /** Prompt tokens in the KV cache. */
  computed = 0;
  readonly outputIds: number[] = [];
  readonly promptTokens: ReadonlySet<number>;
  readonly outputCounts = new Map<number, number>();
  readonly rng: Rng;
  readonly scratch: SamplerScratch;
  private readonly detokenizer: IncrementalDetokenizer;
  private readonly stopMatcher: StopMatcher;
  cancelled = false;
  finishReason: FinishReason | undefined;
  stopString: string | undefined;
  /** Steps this sequence has taken part in (the prefill is step 0). */
  steps = 0;
  /** Filled chunk by chunk while the prompt is prefilled (when the request asks for them). */
  promptLogprobs: PromptLogprob[] = [null];
  promptStopWordMass: number[] = [];
  promptDistributions: Float32Array[] = [];
  /** The prompt's taps, accumulated over its chunks. */
  prefillTaps: TapAccumulator;
  /** Switch, prompt and scoring: sequences with equal keys and prompts can share one prefill. */
  private readonly shareKey: string;

  constructor(
    readonly request: GenerationRequest,
    readonly promptIds: number[],
    tokenizer: TextTokenizer,
    vocabSize: number,
    private readonly eosIds: readonly number[],
    private readonly contextLength: number,
    /** Coordinates ("layer:row:col") whose signed activation this sequence's frames report. */
    readonly reportedCoordinates: ReadonlySet<string>,
    numLayers: number,
    /** The most prompt tokens one step may feed it. */
    readonly chunkLimit: number,
  ) {
    this.prefillTaps = new TapAccumulator(numLayers);
    const plan = request.switchPlan;
    this.shareKey = JSON.stringify([
      plan.entries.map(coordinateId).join(','),
      plan.entries.map((e) => e.scale).join(','),
      plan.restoreActivation,
      plan.activationPosition,
      request.promptLogprobs,
      request.promptStopWordIds ?? null,
      request.promptDistributions === true,
      request.maxTokens === 0,
    ]);
    this.promptTokens = createPenaltyState(promptIds).promptTokens;
    this.rng = createRng(request.sampling.seed ?? randomSeed(), request.streamIndex);
    this.scratch = createSamplerScratch(vocabSize);
    this.detokenizer = createDetokenizer(tokenizer, promptIds);
    this.stopMatcher = createStopMatcher(request.stop);
  }

  get id(): string {
    return this.request.id;
  }

  get promptLength(): number {
    return this.promptIds.length;
  }

  /** Whether its prompt needs logits at every position (prompt logprobs or stop-word mass). */
  get scoresPrompt(): boolean {
    return this.request.promptLogprobs !== null || this.request.promptStopWordIds !== undefined || this.request.promptDistributions === true;
  }

  /** Takes what the leader's prefill reported (its cache is copied separately). */
  adoptPrefill(leader: Sequence): void {
    this.promptLogprobs = leader.promptLogprobs;
    this.promptStopWordMass = leader.promptStopWordMass;
    this.promptDistributions = leader.promptDistributions;
    this.prefillTaps = leader.prefillTaps;
  }

  canFollow(leader: Schedulable): boolean {
    if (!(leader instanceof Sequence) || leader.shareKey !== this.shareKey || leader.promptIds.length !== this.promptIds.length) return false;
    return this.promptIds.every((id, i) => id === leader.promptIds[i]);
  }

  /** Position of the next token to feed. */
  get nextPosition(): number {
    return this.promptIds.length + this.outputIds.length - 1;
  }

  /** The request's sampling settings, with end-of-sequence tokens banned until min_tokens are out (as vLLM does). */
  samplingParams(): SamplingParams {
    const { sampling, minTokens, stopTokenIds, ignoreEos } = this.request;
    if (this.outputIds.length >= minTokens) return sampling;
    const logitBias = new Map(sampling.logitBias);
    for (const id of [...stopTokenIds, ...(ignoreEos ? [] : this.eosIds)]) logitBias.set(id, -Infinity);
    return { ...sampling, logitBias };
  }

  /** Records a sampled token; returns the text the client may see now and whether the sequence ended. */
  append(tokenId: number): { text: string; finished: boolean } {
    this.outputIds.push(tokenId);
    recordOutputToken(this.outputCounts, tokenId);
    const { request } = this;
    const match = this.stopMatcher.push(this.detokenizer.push(tokenId));
    if (match.stopped) {
      this.stopString = match.stopString;
      return { text: match.emit, finished: this.finish('stop') };
    }
    if (request.stopTokenIds.includes(tokenId) || (!request.ignoreEos && this.eosIds.includes(tokenId))) {
      return { text: match.emit, finished: this.finish('stop') };
    }
    const atContextEnd = this.promptIds.length + this.outputIds.length >= this.contextLength;
    if (this.outputIds.length >= (request.maxTokens ?? request.maxTokensLimit ?? Infinity) || atContextEnd) return { text: match.emit, finished: this.finish('length') };
    return { text: match.emit, finished: false };
  }

  /** The text held back for stop-string matching, released when the sequence ends without a stop. */
  flushText(): string {
    if (this.finishReason === 'stop' && this.stopString !== undefined) return '';
    return this.stopMatcher.push(this.detokenizer.flush()).emit + this.stopMatcher.flush();
  }

  finish(reason: FinishReason): boolean {
    this.finishReason ??= reason;
    return true;
  }
}
