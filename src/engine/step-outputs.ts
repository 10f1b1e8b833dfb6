// What a step's outputs mean for each scheduled sequence (the engine's `update_from_output`): a prompt
// chunk's scores and taps, a completed prompt's first token (and its followers' copies of the cache),
// a decoded token, a comparison's scored positions; and the events that say so. A fault while booking
// one sequence fails that sequence (and those sharing its prefill or comparison), no other.
import { tokenFrame } from './activation-frames.js';
import type { ComparisonGroup } from './comparison.js';
import { ScoringPass } from './comparison.js';
import type { KvCache } from './kv-cache.js';
import { logDistribution, probabilityMass, rowOf, tokenLogprob, topTokens, type LogitRows } from './logit-rows.js';
import type { ActivationFrame, ComparisonScores, EngineErrorKind, EngineInfo, FinishReason, SequenceEvent, TokenAlternative } from './protocol.js';
import { sampleToken } from './sampler.js';
import type { Scheduler, ScheduledStep } from './scheduler.js';
import { Sequence } from './sequence.js';
import type { StepFetches, StepTaps } from './session.js';
import type { PackedRow, PackedStep } from './step-batch.js';
import type { TextTokenizer } from './tokenizer.js';

export type Work = Sequence | ScoringPass;

/** Why booking failed a sequence, when it is the request's doing rather than the engine's. */
export interface BookingFault {
  kind: EngineErrorKind;
  field?: 'switch';
}

/**
 * A row whose logits are not finite (NaN, or an infinity the log-sum-exp carries): nothing can be
 * sampled from it. With a switch applied it is the switch's doing (a scale that overflows float32).
 */
class NonFiniteLogits extends Error {
  constructor(readonly switched: boolean) {
    super(
      switched
        ? "the model's activations overflowed float32 under this super-weight switch (the next-token logits are not finite); use a smaller scale"
        : 'the next-token logits are not finite',
    );
  }
}

export interface Booked {
  events: SequenceEvent[];
  /** Leave the scheduler. */
  finished: Set<string>;
  /** Comparison members done generating: they keep their rows until the group scores. */
  held: Sequence[];
  /** Cache rows to free. */
  closed: string[];
}

export interface StepOutputOptions {
  instrumented: boolean;
  comparisons: Map<string, ComparisonGroup>;
  onComparisonReady: (group: ComparisonGroup) => void;
}

interface StepView {
  packed: PackedStep;
  rowIndex: Map<string, number>;
  rows: LogitRows;
  taps: StepTaps | undefined;
  decodeFrames: boolean;
}

export class StepOutputs {
  private readonly tokenTexts: (string | undefined)[] = [];

  constructor(
    private readonly info: EngineInfo,
    private readonly tokenizer: TextTokenizer,
    private readonly scheduler: Scheduler<Work>,
    private readonly kv: KvCache,
    private readonly options: StepOutputOptions,
  ) {}

  book(
    step: ScheduledStep<Work>,
    packed: PackedStep,
    rowIndex: Map<string, number>,
    out: StepFetches,
    decodeFrames: boolean,
    /** Ends the work (a comparison member: its whole group) and returns the ids of the sequences it ended. */
    fail: (work: Work, message: string, fault?: BookingFault) => ReadonlySet<string>,
  ): Booked {
    const booked: Booked = { events: [], finished: new Set(), held: [], closed: [] };
    const view: StepView = { packed, rowIndex, rows: { logits: out.logits, logSumExp: out.logitsLogSumExp, vocabSize: this.info.vocabSize }, taps: out.taps, decodeFrames };
    // Sequences a failure ended during this booking (a comparison's other members too): whatever the
    // step computed for them, before or after the failure, is not booked. Nor is it for sequences that
    // left while the step ran (a submit refusing their comparison is handled during session.run).
    const voided = new Set<string>();
    const guarded = (work: Work, body: () => void): void => {
      if (voided.has(work.id) || !this.scheduler.find(work.id)) return;
      try {
        body();
      } catch (err) {
        const ended =
          err instanceof NonFiniteLogits
            ? fail(work, err.message, err.switched ? { kind: 'invalid_request', field: 'switch' } : undefined)
            : fail(work, `the engine failed on this sequence: ${(err as Error).message}`);
        for (const id of ended) {
          voided.add(id);
          booked.finished.delete(id);
        }
        booked.events = booked.events.filter((e) => !ended.has(e.id));
        booked.held = booked.held.filter((s) => !ended.has(s.id));
        booked.closed = booked.closed.filter((id) => !ended.has(id));
      }
    };
    for (const { sequence, tokens } of step.prefill) {
      if (sequence instanceof ScoringPass) {
        guarded(sequence, () => this.scoreChunk(sequence, tokens, view, booked));
        continue;
      }
      let completed = false;
      guarded(sequence, () => (completed = this.promptChunk(sequence, tokens, view, booked)));
      // Each follower books on its own, so one that fails takes nobody with it.
      if (completed) for (const f of [...this.scheduler.followersOf(sequence.id)] as Sequence[]) guarded(f, () => this.follow(sequence, f, view, booked));
    }
    for (const s of step.decode) guarded(s, () => this.decodeToken(s as Sequence, view, booked));
    return booked;
  }

  /** After the scheduler booked the step: rows are kept or freed, and complete comparisons start scoring. */
  settle(booked: Booked): void {
    for (const s of booked.held) {
      this.scheduler.hold(s);
      const group = this.options.comparisons.get(s.request.comparison!.group);
      group?.done.add(s.id);
      if (group?.ready && !group.pass) this.options.onComparisonReady(group);
    }
    for (const id of booked.closed) this.kv.close(id);
  }

  finishEvent(s: Sequence, reason: FinishReason, comparison?: ComparisonScores): SequenceEvent {
    s.finish(reason);
    return {
      type: 'finish',
      id: s.id,
      reason: s.finishReason!,
      text: reason === 'abort' ? '' : s.flushText(),
      stopString: s.stopString,
      promptTokens: s.promptIds.length,
      completionTokens: s.outputIds.length,
      ...(comparison ? { comparison } : {}),
    };
  }

  private row(view: StepView, id: string): PackedRow {
    return view.packed.rows[view.rowIndex.get(id)!]!;
  }

  /** Books a prompt chunk; returns whether it completed the prompt. */
  private promptChunk(s: Sequence, tokens: number, view: StepView, booked: Booked): boolean {
    const row = this.row(view, s.id);
    if (view.taps) s.prefillTaps.add(view.taps, row.token, tokens, s.computed, view.packed.coordinates);
    if (s.scoresPrompt) this.scorePrompt(s, view.rows, row.logit, tokens);
    if (s.computed + tokens < s.promptLength) return false;
    this.completePrompt(s, view, this.lastLogit(view, s.id), booked);
    return true;
  }

  /** A follower takes a copy of its leader's prompt cache and samples from the same last logits. */
  private follow(leader: Sequence, f: Sequence, view: StepView, booked: Booked): void {
    this.kv.fork(leader.id, f.id, leader.promptLength);
    f.computed = f.promptLength;
    f.adoptPrefill(leader);
    this.completePrompt(f, view, this.lastLogit(view, leader.id), booked);
  }

  private lastLogit(view: StepView, id: string): number {
    const row = this.row(view, id);
    return row.logit + row.logits - 1;
  }

  private completePrompt(s: Sequence, view: StepView, lastLogit: number, booked: Booked): void {
    booked.events.push(this.promptEvent(s));
    if (s.request.maxTokens === 0) {
      this.finish(s, 'length', booked);
      return;
    }
    const frame = this.options.instrumented ? s.prefillTaps.frame('prefill', 0, s.reportedCoordinates) : undefined;
    this.sampleNext(s, view.rows, lastLogit, frame, booked);
  }

  private decodeToken(s: Sequence, view: StepView, booked: Booked): void {
    const row = this.row(view, s.id);
    const frame =
      view.decodeFrames && view.taps
        ? tokenFrame(view.taps, row.token, s.nextPosition, s.steps, view.packed.coordinates, s.reportedCoordinates, this.info.numLayers)
        : undefined;
    this.sampleNext(s, view.rows, row.logit, frame, booked);
  }

  private sampleNext(s: Sequence, rows: LogitRows, logitRow: number, frame: ActivationFrame | undefined, booked: Booked): void {
    if (!Number.isFinite(rows.logSumExp[logitRow])) throw new NonFiniteLogits(s.request.switchPlan.entries.length > 0);
    const sampled = sampleToken(rowOf(rows, logitRow), s.samplingParams(), s, s.rng, s.scratch, rows.logSumExp[logitRow]);
    s.steps++;
    const { text, finished } = s.append(sampled.tokenId);
    booked.events.push({
      type: 'token',
      id: s.id,
      tokenId: sampled.tokenId,
      token: this.tokenText(sampled.tokenId),
      text,
      logprob: sampled.logprob,
      top: sampled.topLogprobs.map((t) => this.alternative(t.tokenId, t.logprob)),
      frame,
    });
    if (finished) this.finish(s, s.finishReason!, booked);
  }

  private finish(s: Sequence, reason: FinishReason, booked: Booked): void {
    if (s.request.comparison) {
      s.finish(reason);
      booked.held.push(s);
      return;
    }
    booked.finished.add(s.id);
    booked.closed.push(s.id);
    booked.events.push(this.finishEvent(s, reason));
  }

  private scoreChunk(pass: ScoringPass, tokens: number, view: StepView, booked: Booked): void {
    pass.record(view.rows, pass.members.map((m) => this.row(view, m.id).logit), tokens);
    if (pass.computed + tokens < pass.promptLength) return;
    booked.finished.add(pass.id);
    pass.members.forEach((m, i) => {
      booked.closed.push(m.id);
      booked.events.push(this.finishEvent(m, m.finishReason!, pass.scores[i]));
    });
    this.options.comparisons.delete(pass.group.id);
  }

  /** Logprob and alternatives of each prompt token predicted in this chunk, and the stop-word mass there. */
  private scorePrompt(s: Sequence, rows: LogitRows, firstLogit: number, tokens: number): void {
    const k = s.request.promptLogprobs;
    const stopIds = s.request.promptStopWordIds;
    for (let t = 0; t < tokens; t++) {
      const position = s.computed + t;
      if (position + 1 >= s.promptLength) break;
      const row = firstLogit + t;
      if (k !== null) {
        s.promptLogprobs[position + 1] = {
          logprob: tokenLogprob(rows, row, s.promptIds[position + 1]!),
          top: topTokens(rows, row, k).map((a) => this.alternative(a.tokenId, a.logprob)),
        };
      }
      if (stopIds) s.promptStopWordMass[position] = probabilityMass(rows, row, stopIds);
      if (s.request.promptDistributions) s.promptDistributions[position] = logDistribution(rows, row);
    }
  }

  private promptEvent(s: Sequence): SequenceEvent {
    return {
      type: 'prompt',
      id: s.id,
      promptIds: s.promptIds,
      promptText: 'text' in s.request.prompt ? s.request.prompt.text : this.tokenizer.decode(s.promptIds, { skipSpecialTokens: true }),
      promptTokens: s.promptIds.map((id) => this.tokenText(id)),
      ...(s.request.promptLogprobs !== null ? { promptLogprobs: s.promptLogprobs } : {}),
      ...(s.request.promptStopWordIds ? { stopWordMass: s.promptStopWordMass } : {}),
      ...(s.request.promptDistributions ? { distributions: s.promptDistributions } : {}),
    };
  }

  private alternative(tokenId: number, logprob: number): TokenAlternative {
    return { tokenId, token: this.tokenText(tokenId), logprob };
  }

  /** A token's text, decoded once per id (the vocabulary bounds the cache). */
  private tokenText(id: number): string {
    return (this.tokenTexts[id] ??= this.tokenizer.tokenText(id));
  }
}
