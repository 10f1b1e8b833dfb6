// An A/B comparison inside the worker. The group's members (one sequence per switch state) generate
// as ordinary sequences; a member that is done keeps its cache row. Once all are done, each row is cut
// back to the prompt and fed the baseline's tokens, all rows in lockstep (one scoring pass of N rows),
// so every state's next-token distribution at a baseline position comes out of the same step: the
// baseline tokens' logprobs, KL and stop-word mass are computed there and only those numbers leave.
// The prompt's cache is reused, never recomputed.
import type { ComparisonScores } from './protocol.js';
import { klDivergence, probabilityMass, tokenLogprob, type LogitRows } from './logit-rows.js';
import type { Schedulable } from './scheduler.js';
import type { Sequence } from './sequence.js';

export class ComparisonGroup {
  readonly members: Sequence[] = [];
  /** Members that finished generating. */
  readonly done = new Set<string>();
  /** Why the comparison cannot complete (a member was refused or failed). */
  failure: string | undefined;
  pass: ScoringPass | undefined;
  /** Members submitted so far, refused ones included. */
  seen = 0;

  constructor(
    readonly id: string,
    readonly size: number,
  ) {}

  get ready(): boolean {
    return this.members.length === this.size && this.done.size === this.size;
  }

  /** Members in state order (index 0, the baseline, first). */
  ordered(): Sequence[] {
    return [...this.members].sort((a, b) => a.request.comparison!.index - b.request.comparison!.index);
  }
}

export class ScoringPass implements Schedulable {
  readonly kind = 'scoring';
  readonly id: string;
  cancelled = false;
  computed = 0;
  readonly width: number;
  readonly promptLength: number;
  /** Fed from `startPosition`: the prompt's last token, then the baseline's tokens but its last. */
  readonly tokens: number[];
  readonly startPosition: number;
  readonly baseline: number[];
  readonly scores: ComparisonScores[];

  constructor(
    readonly group: ComparisonGroup,
    /** In state order; row i scores under member i's switch. */
    readonly members: Sequence[],
    readonly chunkLimit: number,
    private readonly stopWordIds: readonly number[],
  ) {
    const base = members[0]!;
    this.id = `${group.id}#scoring`;
    this.width = members.length;
    this.baseline = [...base.outputIds];
    this.startPosition = base.promptLength - 1;
    this.tokens = [base.promptIds[this.startPosition]!, ...this.baseline.slice(0, -1)];
    this.promptLength = this.tokens.length;
    this.scores = members.map(() => ({ baselineTokenLogprobs: [], klDivergence: [], stopWordMass: [] }));
  }

  canFollow(): boolean {
    return false;
  }

  /** Scores `count` positions from `this.computed`; member i's logits rows start at `firstRows[i]`. */
  record(rows: LogitRows, firstRows: readonly number[], count: number): void {
    for (let t = 0; t < count; t++) {
      const next = this.baseline[this.computed + t]!;
      const base = firstRows[0]! + t;
      this.members.forEach((_, i) => {
        const row = firstRows[i]! + t;
        const scores = this.scores[i]!;
        scores.baselineTokenLogprobs.push(tokenLogprob(rows, row, next));
        scores.klDivergence.push(i === 0 ? 0 : klDivergence(rows, base, row));
        scores.stopWordMass.push(probabilityMass(rows, row, this.stopWordIds));
      });
    }
  }
}
