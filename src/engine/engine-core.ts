// The engine loop, free of any thread or transport: requests in, one `session.run` per step for every
// scheduled row, per-sequence events out. The worker wraps it; tests and benchmarks drive it directly.
// A step: the scheduler decides (decodes, then prompt chunks within the token budget), the rows are
// laid out in the KV cache and packed, the graph runs, the new keys and values are written in place,
// and each sequence books its tokens (step-outputs.ts). A fault outside the run fails only the
// sequences it concerns.
import { coordinateId, coordinateProblems, SUPER_ACTIVATION_PROMPT, switchOverflowProblems, switchPlanProblems, type SuperWeightCoordinate } from '../model/switch-plan.js';
import { measureSuperActivationReference } from './activation-reference.js';
import { downProjElement, openCheckpoint, parameterCount, type Checkpoint } from '../model/checkpoint.js';
import type { ComputeDtype } from '../model/graph-context.js';
import { modelFolderName } from '../model/hub-cache.js';
import { stopWordTokenIds } from './stop-words.js';
import { ComparisonGroup, ScoringPass } from './comparison.js';
import { HostKvCache, type KvCache, type KvGeometry } from './kv-cache.js';
import type { EngineErrorKind, EngineInfo, EngineUpdate, GenerationRequest, SequenceEvent, StepStats } from './protocol.js';
import { DEFAULT_SCHEDULER_LIMITS, Scheduler, type ScheduledStep, type SchedulerLimits } from './scheduler.js';
import { Sequence } from './sequence.js';
import type { DeviceRequest } from './device.js';
import { createModelSession, type ModelSession, type StepFetches } from './session.js';
import { floatWeightsInfo, prepareServedWeights, type ServedWeights } from './served-weights.js';
import type { WeightOptions } from '../model/quantize/weight-format.js';
import { packStep, type PackedStep, type StepContext, type StepRow } from './step-batch.js';
import { StepOutputs, type BookingFault, type Work } from './step-outputs.js';
import { loadTokenizer, type TextTokenizer } from './tokenizer.js';

export interface EngineOptions {
  modelDir: string;
  device: DeviceRequest;
  /** Build the graph with the switch and taps (the product); off only for overhead measurements. */
  instrument: boolean;
  /** Defaults to DEFAULT_SCHEDULER_LIMITS. */
  limits?: SchedulerLimits;
  /** Super weights in force for this model (registry, detection or a file next to the model). */
  knownSuperWeights: SuperWeightCoordinate[];
  /** Cap on prompt + output tokens; defaults to the model's max_position_embeddings. */
  contextLength?: number;
  intraOpThreads?: number;
  /** The device's choice unless set (float32 on CPU, float16 on CUDA and WebGPU); set to compare devices at one precision. */
  computeDtype?: ComputeDtype;
  /** float32 (CPU default), float16, or int8/int4 block-quantized with the super weights kept exact. */
  weights?: Partial<WeightOptions>;
  onWarning?: (message: string) => void;
  /** Progress worth telling an operator (quantizing a checkpoint). */
  onLog?: (message: string) => void;
}

export type EngineListener = (update: EngineUpdate) => void;

// Logits one step returns for one sequence's prompt positions (echo logprobs, stop-word mass, a
// comparison's scoring): 16 MiB is 128 positions of a 32k vocabulary, so a 4k prompt never asks the
// graph for [4k, V] at once.
const MAX_PROMPT_LOGIT_BYTES = 16 * 2 ** 20;

interface PreparedStep {
  packed: PackedStep;
  /** Packed row index of each cache row (sequence id). */
  rowIndex: Map<string, number>;
  withTaps: boolean;
}

export class EngineCore {
  private readonly scheduler: Scheduler<Work>;
  private readonly kv: KvCache;
  private readonly weightValues = new Map<string, number>();
  private readonly graphValues = new Map<string, number>();
  readonly stepContext: StepContext;
  private readonly comparisons = new Map<string, ComparisonGroup>();
  private readonly outputs: StepOutputs;
  private readonly promptLogitRows: number;
  private decodeFrames = false;

  private constructor(
    readonly info: EngineInfo,
    private readonly checkpoint: Checkpoint,
    private readonly session: ModelSession,
    private readonly served: ServedWeights,
    readonly tokenizer: TextTokenizer,
    private readonly options: EngineOptions,
    private readonly listener: EngineListener,
  ) {
    const { spec } = checkpoint;
    this.scheduler = new Scheduler(options.limits ?? DEFAULT_SCHEDULER_LIMITS);
    this.kv = new HostKvCache(this.kvGeometry());
    this.promptLogitRows = Math.max(1, Math.floor(MAX_PROMPT_LOGIT_BYTES / (spec.vocabSize * Float32Array.BYTES_PER_ELEMENT)));
    this.stepContext = {
      numLayers: spec.numLayers,
      knownSuperWeights: options.knownSuperWeights,
      switchValues: { original: (c) => this.weightValue(c), inGraph: (c) => this.graphValue(c) },
    };
    this.outputs = new StepOutputs(info, tokenizer, this.scheduler, this.kv, {
      instrumented: session.info.instrumented,
      comparisons: this.comparisons,
      onComparisonReady: (group) => this.startScoring(group),
    });
  }

  static async load(options: EngineOptions, listener: EngineListener): Promise<EngineCore> {
    const started = performance.now();
    const checkpoint = openCheckpoint(options.modelDir);
    const opened = performance.now();
    const { spec } = checkpoint;
    const problems = coordinateProblems(options.knownSuperWeights, spec);
    if (problems.length > 0) throw new Error(`super weights do not fit ${checkpoint.dir}: ${problems.join('; ')}`);
    const tokenizer = await loadTokenizer(checkpoint.dir);
    const tokenized = performance.now();
    const served = prepareServedWeights({
      checkpoint,
      options: options.weights ?? {},
      device: options.device,
      knownSuperWeights: options.knownSuperWeights,
      log: options.onLog,
    });
    const session = await createModelSession(checkpoint, {
      device: options.device,
      instrument: options.instrument,
      intraOpThreads: options.intraOpThreads,
      computeDtype: served.computeDtype ?? options.computeDtype,
      quantized: served.quantized,
      onWarning: options.onWarning,
    });
    const info: EngineInfo = {
      modelDir: checkpoint.dir,
      loadMs: { checkpoint: opened - started, tokenizer: tokenized - opened, ...session.info.loadMs, total: 0 },
      modelId: spec.nameOrPath || modelFolderName(checkpoint.dir),
      architecture: spec.architecture,
      parameterCount: parameterCount(checkpoint),
      contextLength: Math.min(options.contextLength ?? spec.maxPositionEmbeddings, spec.maxPositionEmbeddings),
      vocabSize: spec.vocabSize,
      hiddenSize: spec.hiddenSize,
      intermediateSize: spec.intermediateSize,
      numLayers: spec.numLayers,
      session: session.info,
      weights: served.quantized ? served.info : floatWeightsInfo(checkpoint, session.info.computeDtype),
      knownSuperWeights: [],
      bosId: tokenizer.bosId,
      eosIds: [...new Set([...tokenizer.eosIds, ...spec.eosTokenIds])],
      bosToken: tokenizer.bosToken,
      eosToken: tokenizer.eosToken,
      chatTemplate: tokenizer.chatTemplate,
      stopWords: stopWordTokenIds((text) => tokenizer.encode(text, { addSpecialTokens: false })),
    };
    const engine = new EngineCore(info, checkpoint, session, served, tokenizer, options, listener);
    info.knownSuperWeights = options.knownSuperWeights.map((c) => ({ ...c, originalValue: engine.weightValue(c) }));
    if (options.instrument) {
      info.superActivationReference = await measureSuperActivationReference({
        checkpoint,
        session,
        servedIsFloat32: !served.quantized && session.info.computeDtype === 'float32',
        precision: info.weights.precision,
        promptIds: tokenizer.encode(SUPER_ACTIVATION_PROMPT, { addSpecialTokens: true }),
        known: options.knownSuperWeights,
        stepContext: engine.stepContext,
        kvElements: engine.kvGeometry().elements,
        intraOpThreads: options.intraOpThreads,
      });
    }
    info.loadMs.total = performance.now() - started;
    return engine;
  }

  get hasWork(): boolean {
    return this.scheduler.waitingCount + this.scheduler.runningCount > 0;
  }

  /** Whether decode steps build activation frames (prefill frames are always built: the metrics read them). */
  setDecodeFrames(wanted: boolean): void {
    this.decodeFrames = wanted;
  }

  /** Validates and queues a sequence; a request the engine cannot take is refused with an error event, never thrown. */
  submit(request: GenerationRequest): void {
    try {
      this.admit(request);
    } catch (err) {
      this.options.onWarning?.(`engine refused a request it could not read: ${(err as Error).message}`);
      this.emit([{ type: 'error', id: String(request?.id), kind: 'engine_failure', message: `the engine could not take the request: ${(err as Error).message}` }]);
    }
  }

  /** Marks a sequence (a comparison: every member) cancelled; it leaves at the next step. */
  cancel(id: string): void {
    const work = this.scheduler.find(id);
    if (!work) {
      const pass = [...this.comparisons.values()].find((g) => g.members.some((m) => m.id === id))?.pass;
      if (pass) pass.cancelled = true;
      return;
    }
    work.cancelled = true;
    const group = this.groupOf(work);
    for (const member of group?.members ?? []) member.cancelled = true;
    if (group?.pass) group.pass.cancelled = true;
  }

  /** Runs one scheduled step. Returns false when there was nothing to do. */
  async step(): Promise<boolean> {
    const started = performance.now();
    this.dropCancelled();
    const step = this.scheduler.schedule();
    const work = [...step.decode, ...step.prefill.map((c) => c.sequence)];
    if (work.length === 0) return false;
    let prepared: PreparedStep;
    let out: StepFetches;
    let runMs: number;
    try {
      prepared = this.prepare(step);
      const runStarted = performance.now();
      out = await this.session.run(prepared.packed.feeds, prepared.withTaps);
      runMs = performance.now() - runStarted;
      this.kv.write(out.present, prepared.packed.tokenKvIds, prepared.packed.tokenPositions);
    } catch (err) {
      this.fail(work, `the model run failed: ${(err as Error).message}`);
      return true;
    }
    const booked = this.outputs.book(step, prepared.packed, prepared.rowIndex, out, this.decodeFrames, (w, message, fault) => this.fail([w], message, fault));
    this.scheduler.update(step, booked.finished);
    this.outputs.settle(booked);
    this.emit(booked.events, this.stats(step, prepared.packed, runMs, performance.now() - started));
    return true;
  }

  /** Cancels everything and frees the session. */
  async close(): Promise<void> {
    for (const w of this.scheduler.all()) this.cancel(w.id);
    await this.session.release();
  }

  private admit(request: GenerationRequest): void {
    const membership = request.comparison;
    const group = membership ? this.comparisonGroup(membership.group, membership.size) : undefined;
    if (group) group.seen++;
    const problem = group?.failure ? { kind: 'invalid_request' as const, message: group.failure, field: 'comparison' as const } : this.validate(request);
    if ('kind' in problem) {
      if (group && !group.failure) this.failComparison(group, `state ${membership!.index} was refused: ${problem.message}`);
      this.emit([{ type: 'error', id: request.id, ...problem }]);
      this.forgetComparisonIfSettled(group);
      return;
    }
    const reported = new Set([...this.options.knownSuperWeights, ...request.switchPlan.entries].map(coordinateId));
    const sequence = new Sequence(
      request,
      problem,
      this.tokenizer,
      this.info.vocabSize,
      this.info.eosIds,
      this.info.contextLength,
      reported,
      this.info.numLayers,
      request.promptLogprobs !== null || request.promptStopWordIds !== undefined || request.promptDistributions ? this.promptLogitRows : Infinity,
    );
    group?.members.push(sequence);
    this.scheduler.add(sequence);
    const weightValues = Object.fromEntries(
      [...this.options.knownSuperWeights, ...request.switchPlan.entries].map((c) => [coordinateId(c), this.weightValue(c)]),
    );
    this.emit([{ type: 'accepted', id: request.id, promptTokens: problem.length, weightValues, switchPlan: request.switchPlan, tags: request.tags }]);
  }

  private comparisonGroup(id: string, size: number): ComparisonGroup {
    let group = this.comparisons.get(id);
    if (!group) this.comparisons.set(id, (group = new ComparisonGroup(id, size)));
    return group;
  }

  /** Lays the step's rows out in the cache and packs the graph inputs. */
  private prepare(step: ScheduledStep<Work>): PreparedStep {
    const rows = new Map<string, StepRow>();
    for (const s of step.decode) {
      const seq = s as Sequence;
      rows.set(seq.id, { kvId: seq.id, tokens: [seq.outputIds[seq.outputIds.length - 1]!], startPosition: seq.nextPosition, plan: seq.request.switchPlan, logits: 'last' });
    }
    const prefillIds: string[] = [];
    for (const { sequence: w, tokens } of step.prefill) {
      if (w instanceof ScoringPass) {
        for (const member of w.members) {
          rows.set(member.id, {
            kvId: member.id,
            tokens: w.tokens.slice(w.computed, w.computed + tokens),
            startPosition: w.startPosition + w.computed,
            plan: member.request.switchPlan,
            logits: 'all',
          });
          prefillIds.push(member.id);
        }
        continue;
      }
      const s = w as Sequence;
      if (!this.kv.has(s.id)) this.kv.open(s.id);
      const completes = s.computed + tokens === s.promptLength;
      rows.set(s.id, {
        kvId: s.id,
        tokens: s.promptIds.slice(s.computed, s.computed + tokens),
        startPosition: s.computed,
        plan: s.request.switchPlan,
        logits: s.scoresPrompt ? 'all' : completes && s.request.maxTokens !== 0 ? 'last' : 'none',
      });
      prefillIds.push(s.id);
    }
    const needed = Math.max(...[...rows.values()].map((r) => r.startPosition + r.tokens.length));
    const { order, views } = this.kv.arrange([step.decode.map((s) => s.id), prefillIds], needed);
    const decodeRows = order[0]!.map((id) => rows.get(id)!);
    const prefillRows = order[1]!.map((id) => rows.get(id)!);
    const packed = packStep(decodeRows, prefillRows, { decode: views[0]!, prefill: views[1]! }, this.kv.slots, this.stepContext);
    const rowIndex = new Map([...order[0]!, ...order[1]!].map((id, i) => [id, i]));
    const promptRows = step.prefill.some((c) => c.sequence instanceof Sequence);
    const withTaps = this.session.info.instrumented && (promptRows || (this.decodeFrames && step.decode.length > 0));
    return { packed, rowIndex, withTaps };
  }

  /** Once every member is done: their rows go back to the prompt and score the baseline together. */
  private startScoring(group: ComparisonGroup): void {
    const members = group.ordered();
    const pass = new ScoringPass(group, members, Math.max(1, Math.floor(this.promptLogitRows / members.length)), members[0]!.request.comparison!.stopWordIds);
    group.pass = pass;
    for (const m of members) this.kv.truncate(m.id, pass.startPosition);
    this.scheduler.resume(pass, members.map((m) => m.id));
  }

  private dropCancelled(): void {
    const cancelled = this.scheduler.takeCancelled();
    if (cancelled.length === 0) return;
    const events: SequenceEvent[] = [];
    for (const w of cancelled) {
      for (const s of w instanceof ScoringPass ? w.members : [w as Sequence]) {
        this.kv.close(s.id);
        events.push(this.outputs.finishEvent(s, 'abort'));
      }
      const group = this.groupOf(w);
      if (group) this.endComparison(group, 'the comparison was cancelled');
    }
    this.emit(events);
  }

  /**
   * Ends these sequences with an engine error (a comparison: all its members); the engine keeps serving
   * the others. Sequences waiting to share a failed one's prefill go back to the queue and compute it.
   */
  private fail(work: readonly Work[], message: string, fault?: BookingFault): ReadonlySet<string> {
    if (!fault) this.options.onWarning?.(`engine step failed: ${message}`);
    const events: SequenceEvent[] = [];
    const kind = fault?.kind ?? 'engine_failure';
    // A failing comparison member takes its group with it; the others' errors say which state failed,
    // so the request is answered with the failing state's own error.
    const failed = new Map<Sequence, SequenceEvent>();
    for (const w of work) {
      const group = this.groupOf(w);
      const own = (s: Sequence): SequenceEvent => ({ type: 'error', id: s.id, kind, message, ...(fault?.field ? { field: fault.field } : {}) });
      if (!group || w instanceof ScoringPass) {
        for (const s of group ? group.members : [w as Sequence]) failed.set(s, own(s));
      } else {
        const echo = `state ${(w as Sequence).request.comparison!.index} failed: ${message}`;
        for (const s of group.members) if (!failed.has(s)) failed.set(s, { type: 'error', id: s.id, kind, message: echo, field: 'comparison' });
        failed.set(w as Sequence, own(w as Sequence));
        this.endComparison(group, echo);
      }
      if (group?.pass) this.scheduler.remove(group.pass.id);
      if (group && w instanceof ScoringPass) this.endComparison(group, message);
    }
    for (const [s, event] of failed) {
      this.scheduler.remove(s.id);
      this.kv.close(s.id);
      events.push(event);
    }
    this.emit(events);
    return new Set([...failed.keys()].map((s) => s.id));
  }

  private failComparison(group: ComparisonGroup, message: string): void {
    group.failure = message;
    const events: SequenceEvent[] = group.members.map((s) => ({ type: 'error', id: s.id, kind: 'invalid_request', message, field: 'comparison' }));
    for (const s of group.members) {
      this.scheduler.remove(s.id);
      this.kv.close(s.id);
    }
    group.members.length = 0;
    this.emit(events);
  }

  private groupOf(work: Work): ComparisonGroup | undefined {
    if (work instanceof ScoringPass) return work.group;
    const membership = (work as Sequence).request.comparison;
    return membership ? this.comparisons.get(membership.group) : undefined;
  }

  /**
   * A comparison that failed or was cancelled is remembered until every member has been submitted:
   * a member admitted after its group was forgotten would start a new group that never completes.
   */
  private endComparison(group: ComparisonGroup, failure: string): void {
    group.failure ??= failure;
    this.forgetComparisonIfSettled(group);
  }

  /** A failed comparison is dropped once all its members have been submitted. */
  private forgetComparisonIfSettled(group: ComparisonGroup | undefined): void {
    if (group?.failure && group.seen >= group.size) this.comparisons.delete(group.id);
  }

  private validate(request: GenerationRequest): number[] | { kind: EngineErrorKind; message: string; field?: 'switch' } {
    const invalid = (message: string): { kind: EngineErrorKind; message: string } => ({ kind: 'invalid_request', message });
    let ids: number[];
    if ('text' in request.prompt) {
      ids = this.tokenizer.encode(request.prompt.text, { addSpecialTokens: request.prompt.addSpecialTokens ?? true });
    } else {
      ids = request.prompt.tokenIds;
      const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= this.info.vocabSize);
      if (bad !== undefined) return invalid(`token id ${bad} is outside the vocabulary (0..${this.info.vocabSize - 1})`);
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
    const bias = [...request.sampling.logitBias.keys()].find((id) => id >= this.info.vocabSize);
    if (bias !== undefined) return invalid(`logit_bias token id ${bias} is outside the vocabulary (0..${this.info.vocabSize - 1})`);
    const c = request.comparison;
    if (c && (request.maxTokens === 0 || !(c.index >= 0 && c.index < c.size))) return invalid('a comparison member must generate and have an index below the group size');
    if (!this.session.info.instrumented && request.switchPlan.entries.some((e) => e.scale !== 1)) {
      return { kind: 'invalid_request', message: 'this engine runs the plain graph (instrument off), which has no super-weight switch', field: 'switch' };
    }
    const problems = switchPlanProblems(request.switchPlan, this.checkpoint.spec);
    if (problems.length === 0) problems.push(...switchOverflowProblems(request.switchPlan, (c) => this.weightValue(c)));
    return problems.length > 0 ? { kind: 'invalid_request', message: problems.join('; '), field: 'switch' } : ids;
  }

  private stats(step: ScheduledStep<Work>, packed: PackedStep, runMs: number, totalMs: number): StepStats {
    const prefillTokens = step.prefill.reduce((a, c) => a + c.tokens * c.sequence.width, 0);
    const switched = (s: Sequence): boolean => s.request.switchPlan.entries.some((e) => e.scale !== 1);
    const rows = [...step.decode, ...step.prefill.map((c) => c.sequence)].flatMap((w) => (w instanceof ScoringPass ? w.members : [w as Sequence]));
    return {
      phase: prefillTokens > 0 ? 'prefill' : 'decode',
      batchSize: packed.rows.length,
      tokens: packed.feeds.tokens,
      decodeRows: packed.feeds.decodeRows,
      prefillRows: packed.feeds.prefillRows,
      prefillTokens,
      runMs,
      totalMs,
      switchedRows: rows.filter(switched).length,
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

  /** What the graph's down_proj holds at a coordinate (differs from the checkpoint on quantized copies). */
  private graphValue(c: SuperWeightCoordinate): number {
    const id = coordinateId(c);
    let value = this.graphValues.get(id);
    if (value === undefined) {
      value = this.served.inGraph(c, this.weightValue(c));
      this.graphValues.set(id, value);
    }
    return value;
  }

  kvGeometry(): KvGeometry {
    const { spec } = this.checkpoint;
    return {
      numLayers: spec.numLayers,
      kvHeads: spec.numKvHeads,
      headDim: spec.headDim,
      elements: this.session.info.computeDtype === 'float32' ? 'float32' : 'float16',
    };
  }
}
