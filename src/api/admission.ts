// A bounded admission count: sequences running plus waiting may not exceed the configured limits;
// past that, requests get 429 with Retry-After instead of an unbounded queue.
import { ApiError } from '../http/errors.js';

export class Admission {
  private inFlight = 0;

  constructor(private readonly capacity: number) {}

  get used(): number {
    return this.inFlight;
  }

  get limit(): number {
    return this.capacity;
  }

  /** Reserves `sequences` slots or throws 429 (400 when it could never fit); call the returned function once when done. */
  acquire(sequences: number, param: string): () => void {
    if (sequences > this.capacity) {
      throw new ApiError('invalid_request', `the request needs ${sequences} sequences; this server runs at most ${this.capacity} at once`, param);
    }
    if (this.inFlight + sequences > this.capacity) {
      throw new ApiError('too_many_requests', `the server is at capacity (${this.inFlight} of ${this.capacity} sequences in flight); retry shortly`);
    }
    this.inFlight += sequences;
    let released = false;
    return () => {
      if (!released) this.inFlight -= sequences;
      released = true;
    };
  }
}
