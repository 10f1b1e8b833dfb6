// Bookkeeping only, in vLLM v1's shape: `schedule()` decides what the next step computes, the engine
// runs it, `update()` books what it computed. Every decoding sequence gets its one token first; the
// rest of the step's token budget goes to prompt chunks, oldest sequence first, so a long prompt is
// prefilled over several steps while the others keep decoding. A sequence whose prompt (and switch)
// equals one being prefilled waits for that prefill and copies its cache instead of computing it.
// No tensors, no onnxruntime.

export interface SchedulerLimits {
  /** Sequences holding a KV row at once (decoding, prefilling, or done and awaiting their comparison). */
  maxNumSeqs: number;
  /** Tokens one step computes: one per decoding sequence plus the prompt chunks. */
  maxNumBatchedTokens: number;
  /**
   * Prompt tokens a step may carry while sequences are decoding (the most a prompt slows their next
   * token); with nothing decoding a prompt takes the whole budget. Defaults to no extra cap.
   */
  maxPrefillTokensWhileDecoding?: number;
}

// Measured on the 2-core CPU machines this runs on (bench:serve, long-prompts): a float32 decode step
// is bound by reading the weights, a prompt token by compute, and one decode step's time buys about
// 10 prompt tokens whatever the model's size; 8 keeps a step that carries a chunk within 2x of a
// plain decode step. An idle engine prefills 256 tokens a step.
export const DEFAULT_SCHEDULER_LIMITS: SchedulerLimits = { maxNumSeqs: 16, maxNumBatchedTokens: 256, maxPrefillTokensWhileDecoding: 8 };

export interface Schedulable {
  readonly id: string;
  cancelled: boolean;
  /** Tokens to compute before the first sample (its prompt). */
  readonly promptLength: number;
  /** Of those, how many are in the KV cache. */
  computed: number;
  /** Cache rows it computes per token: more than 1 only for rows that run in lockstep (a comparison's scoring). */
  readonly width: number;
  /** The most prompt tokens one step may feed it (bounds the [tokens, vocabulary] logits of prompt scoring). */
  readonly chunkLimit: number;
  /** True when it may skip its prefill and copy `leader`'s cache (same prompt tokens, same switch, same scoring). */
  canFollow(leader: Schedulable): boolean;
}

export interface ScheduledChunk<S> {
  sequence: S;
  /** Prompt tokens fed this step, from `sequence.computed` on. */
  tokens: number;
}

export interface ScheduledStep<S> {
  /** Sequences past their prompt: one token each. */
  decode: S[];
  prefill: ScheduledChunk<S>[];
}

export class Scheduler<S extends Schedulable> {
  private readonly waiting: S[] = [];
  /** In admission order; prefilling and decoding. */
  private readonly running: S[] = [];
  /** Leader id -> sequences that take its prefill. */
  private readonly followers = new Map<string, S[]>();
  /** Done computing but still holding a row (comparison members waiting for the others). */
  private readonly held = new Map<string, S>();

  constructor(private readonly limits: SchedulerLimits) {
    if (limits.maxNumBatchedTokens < limits.maxNumSeqs) {
      throw new Error(`maxNumBatchedTokens (${limits.maxNumBatchedTokens}) must be at least maxNumSeqs (${limits.maxNumSeqs}): every decoding sequence needs a token per step`);
    }
  }

  get waitingCount(): number {
    let count = this.waiting.length;
    for (const list of this.followers.values()) count += list.length;
    return count;
  }

  /** Sequences with a row (a lockstep group counts its rows). */
  get runningCount(): number {
    return this.running.reduce((a, s) => a + s.width, 0) + this.held.size;
  }

  add(sequence: S): void {
    this.waiting.push(sequence);
  }

  find(id: string): S | undefined {
    const match = (s: S): boolean => s.id === id;
    return this.running.find(match) ?? this.waiting.find(match) ?? this.held.get(id) ?? [...this.followers.values()].flat().find(match);
  }

  /** Every sequence the scheduler holds, wherever it is. */
  all(): S[] {
    return [...this.waiting, ...this.running, ...this.held.values(), ...[...this.followers.values()].flat()];
  }

  /** The sequences that take `leaderId`'s prefill; they join when it completes. */
  followersOf(leaderId: string): readonly S[] {
    return this.followers.get(leaderId) ?? [];
  }

  schedule(): ScheduledStep<S> {
    let budget = this.limits.maxNumBatchedTokens;
    const decode: S[] = [];
    const prefill: ScheduledChunk<S>[] = [];
    for (const s of this.running) {
      if (s.computed >= s.promptLength) {
        decode.push(s);
        budget -= s.width;
      }
    }
    const uncapped = budget;
    if (decode.length > 0 && this.limits.maxPrefillTokensWhileDecoding !== undefined) {
      budget = Math.min(budget, this.limits.maxPrefillTokensWhileDecoding);
    }
    // The first prompt in line always advances a token a row when the step has room, so a lockstep
    // group wider than the cap is never starved by decodes.
    const chunkOf = (s: S, left: number): number => {
      const floor = prefill.length === 0 && uncapped >= s.width ? 1 : 0;
      return Math.min(left, s.chunkLimit, Math.max(floor, Math.floor(budget / s.width)));
    };
    let blocked = false;
    for (const s of this.running) {
      if (s.computed >= s.promptLength) continue;
      const tokens = chunkOf(s, s.promptLength - s.computed);
      if (tokens <= 0) {
        // First come, first served: a later prompt never takes the budget an earlier one waits for.
        blocked = true;
        break;
      }
      prefill.push({ sequence: s, tokens });
      budget -= tokens * s.width;
    }
    let seats = this.runningCount + this.waitingCount - this.waiting.length;
    while (!blocked && this.waiting.length > 0) {
      const s = this.waiting[0]!;
      if (seats + s.width > this.limits.maxNumSeqs) break;
      const leader = this.running.find((l) => l.computed < l.promptLength && s.canFollow(l));
      if (leader) {
        this.waiting.shift();
        this.followers.set(leader.id, [...this.followersOf(leader.id), s]);
        seats += s.width;
        continue;
      }
      const tokens = chunkOf(s, s.promptLength);
      if (tokens <= 0) break;
      this.waiting.shift();
      this.running.push(s);
      prefill.push({ sequence: s, tokens });
      budget -= tokens * s.width;
      seats += s.width;
    }
    return { decode, prefill };
  }

  /** After a step: chunks are cached, completed prompts bring their followers in, finished sequences leave. */
  update(step: ScheduledStep<S>, finished: ReadonlySet<string>): void {
    for (const { sequence, tokens } of step.prefill) {
      sequence.computed += tokens;
      if (sequence.computed < sequence.promptLength) continue;
      for (const f of this.followersOf(sequence.id)) {
        f.computed = f.promptLength;
        if (!finished.has(f.id)) this.running.push(f);
      }
      this.followers.delete(sequence.id);
    }
    for (const id of finished) this.remove(id);
  }

  /** Cancelled sequences leave at once; the followers of a cancelled leader go back to the front of the queue. */
  takeCancelled(): S[] {
    const cancelled = this.all().filter((s) => s.cancelled);
    for (const s of cancelled) this.remove(s.id);
    return cancelled;
  }

  /** Keeps a sequence's row after it stopped computing (it no longer runs, it still counts). */
  hold(sequence: S): void {
    this.remove(sequence.id);
    this.held.set(sequence.id, sequence);
  }

  /** Runs a sequence whose rows already exist (made of held ones), after the running ones. */
  resume(sequence: S, heldIds: readonly string[]): void {
    for (const id of heldIds) this.held.delete(id);
    this.running.push(sequence);
  }

  /** Forgets a sequence wherever it is. */
  remove(id: string): void {
    const at = (list: S[]): void => {
      const i = list.findIndex((s) => s.id === id);
      if (i >= 0) list.splice(i, 1);
    };
    at(this.waiting);
    at(this.running);
    this.held.delete(id);
    const orphans = this.followers.get(id);
    if (orphans) {
      // A leader can leave after its followers copied its prompt (in the step that computed it, when
      // its comparison fails there): those have their prompt in the cache and run; the rest queue again.
      this.followers.delete(id);
      const live = orphans.filter((s) => !s.cancelled);
      this.running.push(...live.filter((s) => s.computed >= s.promptLength));
      this.waiting.unshift(...live.filter((s) => s.computed < s.promptLength));
    }
    for (const list of this.followers.values()) at(list);
  }
}
