// The engine loop, free of any thread or transport: requests in, one `session.run` per step for the
// whole batch, per-sequence events out. The worker wraps it; tests and benchmarks drive it directly.
import { coordinateId, coordinateProblems, switchOverflowProblems, switchPlanProblems, type SuperWeightCoordinate } from '../model/switch-plan.js';
import { downProjElement, openCheckpoint, parameterCount, type Checkpoint } from '../model/checkpoint.js';
import type { ComputeDtype } from '../model/graph-context.js';
import { modelFolderName } from '../model/hub-cache.js';
import { stopWordTokenIds } from './stop-words.js';
import { activationFrame } from './activation-frames.js';
import { BatchKvCache, type KvGeometry } from './kv-cache.js';
import type { EngineErrorKind, EngineInfo, EngineUpdate, GenerationRequest, SequenceEvent, StepStats, TokenAlternative } from './protocol.js';
import { logSoftmax, sampleToken, topLogprobs } from './sampler.js';
import { Scheduler, type ScheduledStep, type SchedulerLimits } from './scheduler.js';
import { Sequence } from './sequence.js';
import type { DeviceRequest } from './device.js';
import { createModelSession, type ModelSession, type StepFetches } from './session.js';
import { packStep, type StepContext, type StepRow } from './step-batch.js';
import { loadTokenizer, type TextTokenizer } from './tokenizer.js';

export interface EngineOptions {
  modelDir: string;
  device: DeviceRequest;
  /** Build the graph with the switch and taps (the product); off only for overhead measurements. */
  instrument: boolean;
  limits: SchedulerLimits;
  /** Super weights in force for this model (registry, detection or a file next to the model). */
  knownSuperWeights: SuperWeightCoordinate[];
  /** Cap on prompt + output tokens; defaults to the model's max_position_embeddings. */
  contextLength?: number;
  intraOpThreads?: number;
  /** The device's choice unless set (float32 on CPU, float16 on CUDA and WebGPU); set to compare devices at one precision. */
  computeDtype?: ComputeDtype;
  onWarning?: (message: string) => void;
}

export type EngineListener = (update: EngineUpdate) => void;

export class EngineCore {
  private readonly scheduler: Scheduler<Sequence>;
  private readonly kv: BatchKvCache;
  private readonly weightValues = new Map<string, number>();
  private readonly stepContext: StepContext;
  private readonly vocabSize: number;

  private constructor(
    readonly info: EngineInfo,
    private readonly checkpoint: Checkpoint,
    private readonly session: ModelSession,
    readonly tokenizer: TextTokenizer,
    private readonly options: EngineOptions,
    private readonly listener: EngineListener,
  ) {
    const { spec } = checkpoint;
    this.scheduler = new Scheduler(options.limits);
    this.kv = new BatchKvCache(this.kvGeometry(), session.kvTransfer);
    this.vocabSize = spec.vocabSize;
    this.stepContext = {
      numLayers: spec.numLayers,
      slidingWindow: spec.slidingWindow,
      knownSuperWeights: options.knownSuperWeights,
      weightValue: (c) => this.weightValue(c),
    };
  }

  static async load(options: EngineOptions, listener: EngineListener): Promise<EngineCore> {
    const checkpoint = openCheckpoint(options.modelDir);
    const { spec } = checkpoint;
    const problems = coordinateProblems(options.knownSuperWeights, spec);
    if (problems.length > 0) throw new Error(`super weights do not fit ${checkpoint.dir}: ${problems.join('; ')}`);
    const tokenizer = await loadTokenizer(checkpoint.dir);
    const session = await createModelSession(checkpoint, {
      device: options.device,
      instrument: options.instrument,
      intraOpThreads: options.intraOpThreads,
      computeDtype: options.computeDtype,
      onWarning: options.onWarning,
    });
    const info: EngineInfo = {
      modelDir: checkpoint.dir,
      modelId: spec.nameOrPath || modelFolderName(checkpoint.dir),
      architecture: spec.architecture,
      parameterCount: parameterCount(checkpoint),
      contextLength: Math.min(options.contextLength ?? spec.maxPositionEmbeddings, spec.maxPositionEmbeddings),
      vocabSize: spec.vocabSize,
      hiddenSize: spec.hiddenSize,
      intermediateSize: spec.intermediateSize,
      numLayers: spec.numLayers,
      session: session.info,
      knownSuperWeights: [],
      bosId: tokenizer.bosId,
      eosIds: [...new Set([...tokenizer.eosIds, ...spec.eosTokenIds])],
      bosToken: tokenizer.bosToken,
      eosToken: tokenizer.eosToken,
      chatTemplate: tokenizer.chatTemplate,
      stopWords: stopWordTokenIds((text) => tokenizer.encode(text, { addSpecialTokens: false })),
    };
    const engine = new EngineCore(info, checkpoint, session, tokenizer, options, listener);
    info.knownSuperWeights = options.knownSuperWeights.map((c) => ({ ...c, originalValue: engine.weightValue(c) }));
    return engine;
  }

  get hasWork(): boolean {
    return this.scheduler.waitingCount + this.scheduler.runningCount > 0;
  }

  submit(request: GenerationRequest): void {
    const problem = this.validate(request);
    if ('kind' in problem) {
      this.emit([{ type: 'error', id: request.id, ...problem }]);
      return;
    }
    const reported = new Set([...this.options.knownSuperWeights, ...request.switchPlan.entries].map(coordinateId));
    this.scheduler.add(new Sequence(request, problem, this.tokenizer, this.vocabSize, this.info.eosIds, this.info.contextLength, reported));
    const weightValues = Object.fromEntries(
      [...this.options.knownSuperWeights, ...request.switchPlan.entries].map((c) => [coordinateId(c), this.weightValue(c)]),
    );
    this.emit([{ type: 'accepted', id: request.id, promptTokens: problem.length, weightValues, switchPlan: request.switchPlan, tags: request.tags }]);
  }

  /** Marks a sequence cancelled; it leaves the batch at the next step. */
  cancel(id: string): void {
    const s = this.scheduler.find(id);
    if (s) s.cancelled = true;
  }

  /** Runs one scheduled step. Returns false when there was nothing to do. */
  async step(): Promise<boolean> {
    const started = performance.now();
    const cancelled = this.scheduler.takeCancelled();
    if (cancelled.length > 0) {
      await this.kv.remove(new Set(cancelled.map((s) => s.id)));
      this.emit(cancelled.map((s) => this.finishEvent(s, 'abort')));
    }
    const step = this.scheduler.schedule();
    if (step.kind === 'idle') return false;

    const kv = step.kind === 'prefill' ? BatchKvCache.empty(this.kvGeometry(), step.sequences.map((s) => s.id), this.session.kvTransfer) : this.kv;
    const sequences = step.kind === 'prefill' ? step.sequences : kv.rows.map((id) => this.scheduler.find(id)!);
    const rows: StepRow[] = sequences.map((s) =>
      step.kind === 'prefill'
        ? { tokens: s.promptIds, startPosition: 0, plan: s.request.switchPlan, allLogits: s.request.promptLogprobs !== null || s.request.promptDistributionsFrom != null }
        : { tokens: [s.outputIds[s.outputIds.length - 1]!], startPosition: s.nextPosition, plan: s.request.switchPlan, allLogits: false },
    );
    const packed = packStep(rows, kv, this.stepContext);
    const runStarted = performance.now();
    let out: StepFetches;
    try {
      out = await this.session.run(packed.feeds);
    } catch (err) {
      await this.failStep(step, sequences, kv, err as Error);
      return true;
    }
    const runMs = performance.now() - runStarted;
    kv.commit(out.present, packed.newPositions);

    const events: SequenceEvent[] = [];
    const finished = new Set<string>();
    sequences.forEach((s, b) => {
      const { first, count } = packed.logitRows[b]!;
      const V = this.vocabSize;
      if (step.kind === 'prefill') events.push(this.promptEvent(s, out.logits, first));
      if (s.request.maxTokens === 0) {
        finished.add(s.id);
        events.push(this.finishEvent(s, 'length'));
        return;
      }
      const last = first + count - 1;
      const sampled = sampleToken(out.logits.subarray(last * V, (last + 1) * V), s.samplingParams(), s, s.rng, s.scratch, out.logitsLogSumExp[last]);
      const frame = out.taps
        ? activationFrame(out.taps, b, {
            phase: step.kind,
            step: s.steps,
            positions: packed.newPositions[b]!,
            reported: s.reportedCoordinates,
          }, packed.coordinates, this.info)
        : undefined;
      s.steps++;
      const { text, finished: done } = s.append(sampled.tokenId);
      events.push({
        type: 'token',
        id: s.id,
        tokenId: sampled.tokenId,
        token: this.tokenizer.tokenText(sampled.tokenId),
        text,
        logprob: sampled.logprob,
        top: sampled.topLogprobs.map((t) => this.alternative(t.tokenId, t.logprob)),
        frame,
      });
      if (done) {
        finished.add(s.id);
        events.push(this.finishEvent(s, s.finishReason!));
      }
    });
    await kv.remove(finished);
    if (step.kind === 'prefill') await this.kv.merge(kv);
    this.scheduler.update(step, finished);
    this.emit(events, this.stats(step, rows.length, packed.feeds.tokens, runMs, performance.now() - started));
    return true;
  }

  /** A failed run ends only the sequences of that step; the engine keeps serving the others. */
  private async failStep(step: ScheduledStep<Sequence>, sequences: Sequence[], kv: BatchKvCache, err: Error): Promise<void> {
    const ids = new Set(sequences.map((s) => s.id));
    await kv.remove(ids);
    this.scheduler.update(step, ids);
    this.options.onWarning?.(`engine step failed: ${err.message}`);
    this.emit(sequences.map((s) => ({ type: 'error', id: s.id, kind: 'engine_failure', message: `the model run failed: ${err.message}` })));
  }

  /** Cancels everything and frees the session. */
  async close(): Promise<void> {
    for (const id of this.kv.rows) this.cancel(id);
    await this.session.release();
  }

  private validate(request: GenerationRequest): number[] | { kind: EngineErrorKind; message: string; field?: 'switch' } {
    const invalid = (message: string): { kind: EngineErrorKind; message: string } => ({ kind: 'invalid_request', message });
    let ids: number[];
    if ('text' in request.prompt) {
      ids = this.tokenizer.encode(request.prompt.text, { addSpecialTokens: request.prompt.addSpecialTokens ?? true });
    } else {
      ids = request.prompt.tokenIds;
      const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= this.vocabSize);
      if (bad !== undefined) return invalid(`token id ${bad} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
    if (ids.length === 0) return invalid('the prompt is empty');
    const context = this.info.contextLength;
    // Scoring (max 0) may fill the context; generation needs room for at least one token.
    const needed = ids.length + (request.maxTokens ?? 1);
    if (needed > context || (request.maxTokens !== 0 && ids.length >= context)) {
      return {
        kind: 'context_length_exceeded',
        message: `the context length is ${context} tokens, but ${ids.length} prompt tokens${request.maxTokens ? ` + ${request.maxTokens} max tokens` : ''} were requested`,
      };
    }
    const bias = [...request.sampling.logitBias.keys()].find((id) => id >= this.vocabSize);
    if (bias !== undefined) return invalid(`logit_bias token id ${bias} is outside the vocabulary (0..${this.vocabSize - 1})`);
    const problems = switchPlanProblems(request.switchPlan, this.checkpoint.spec);
    if (problems.length === 0) problems.push(...switchOverflowProblems(request.switchPlan, (c) => this.weightValue(c)));
    return problems.length > 0 ? { kind: 'invalid_request', message: problems.join('; '), field: 'switch' } : ids;
  }

  private promptEvent(s: Sequence, logits: Float32Array, first: number): SequenceEvent {
    const event: SequenceEvent = {
      type: 'prompt',
      id: s.id,
      promptIds: s.promptIds,
      promptText: 'text' in s.request.prompt ? s.request.prompt.text : this.tokenizer.decode(s.promptIds, { skipSpecialTokens: true }),
      promptTokens: s.promptIds.map((id) => this.tokenizer.tokenText(id)),
    };
    const V = this.vocabSize;
    const from = s.request.promptDistributionsFrom;
    if (from != null) {
      event.distributions = [];
      for (let t = Math.max(0, from); t < s.promptIds.length; t++) event.distributions.push(logSoftmax(logits.subarray((first + t) * V, (first + t + 1) * V)));
    }
    const k = s.request.promptLogprobs;
    if (k === null) return event;
    event.promptLogprobs = [null];
    for (let t = 1; t < s.promptIds.length; t++) {
      const row = logSoftmax(logits.subarray((first + t - 1) * V, (first + t) * V));
      event.promptLogprobs.push({
        logprob: row[s.promptIds[t]!]!,
        top: topLogprobs(row, k).map((a) => this.alternative(a.tokenId, a.logprob)),
      });
    }
    return event;
  }

  private alternative(tokenId: number, logprob: number): TokenAlternative {
    return { tokenId, token: this.tokenizer.tokenText(tokenId), logprob };
  }

  private finishEvent(s: Sequence, reason: 'stop' | 'length' | 'abort'): SequenceEvent {
    s.finish(reason);
    return {
      type: 'finish',
      id: s.id,
      reason: s.finishReason!,
      text: reason === 'abort' ? '' : s.flushText(),
      stopString: s.stopString,
      promptTokens: s.promptIds.length,
      completionTokens: s.outputIds.length,
    };
  }

  private stats(step: ScheduledStep<Sequence>, batchSize: number, tokens: number, runMs: number, totalMs: number): StepStats {
    const sequences = step.kind === 'idle' ? [] : step.sequences;
    return {
      phase: step.kind === 'prefill' ? 'prefill' : 'decode',
      batchSize,
      tokens,
      runMs,
      totalMs,
      switchedRows: sequences.filter((s) => s.request.switchPlan.entries.some((e) => e.scale !== 1)).length,
    };
  }

  private emit(events: SequenceEvent[], step?: StepStats): void {
    this.listener({ events, step, load: { running: this.scheduler.runningCount, waiting: this.scheduler.waitingCount } });
  }

  private weightValue(c: SuperWeightCoordinate): number {
    const id = coordinateId(c);
    let value = this.weightValues.get(id);
    if (value === undefined) {
      value = downProjElement(this.checkpoint, c);
      this.weightValues.set(id, value);
    }
    return value;
  }

  private kvGeometry(): KvGeometry {
    const { spec } = this.checkpoint;
    return {
      numLayers: spec.numLayers,
      kvHeads: spec.numKvHeads,
      headDim: spec.headDim,
      elements: this.session.info.computeDtype === 'float32' ? 'float32' : 'float16',
    };
  }
}
