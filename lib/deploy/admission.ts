/**
 * Admission control for the service's heavy work: at most `active` jobs run
 * at once, at most `queue` more wait their turn (first come, first served),
 * and a caller beyond that is turned away at once, before it has read or
 * held anything, instead of piling up memory and latency.
 *
 * @module
 */

/** Options for {@linkcode Admission}. */
export interface AdmissionOptions {
  /** Jobs that run at once (at least 1). */
  active: number;
  /** Jobs that may wait beyond those (0 or more). */
  queue: number;
}

/**
 * A place-keeper for heavy jobs. A caller takes a place with
 * {@linkcode Admission.enter} (false: full, answer "busy"), runs its job
 * through {@linkcode Admission.run} (which waits for one of the `active`
 * slots), and gives the place back with {@linkcode Admission.leave}.
 *
 * @example Two slots, one waiting place: the fourth caller is turned away
 * ```ts
 * import assert from "node:assert/strict";
 * import { Admission } from "./admission.ts";
 * const admission = new Admission({ active: 2, queue: 1 });
 * const started: number[] = [];
 * let release = () => {};
 * const gate = new Promise<void>((r) => release = r);
 * const jobs = [0, 1, 2].map((i) => {
 *   assert.ok(admission.enter());
 *   return admission.run(async () => {
 *     started.push(i);
 *     await gate;
 *   }).finally(() => admission.leave());
 * });
 * assert.equal(admission.enter(), false);
 * await Promise.resolve();
 * assert.deepEqual(started, [0, 1]); // the third waits for a slot
 * assert.deepEqual([admission.running, admission.waiting], [2, 1]);
 * release();
 * await Promise.all(jobs);
 * assert.deepEqual(started, [0, 1, 2]);
 * assert.equal(admission.inside, 0);
 * ```
 */
export class Admission {
  /** Jobs that run at once. */
  readonly active: number;
  /** Jobs that may wait beyond those. */
  readonly queue: number;
  #inside = 0;
  #running = 0;
  #waiting: (() => void)[] = [];

  /** Checks the bounds (whole numbers, `active` at least 1). */
  constructor({ active, queue }: AdmissionOptions) {
    if (!Number.isSafeInteger(active) || active < 1) {
      throw new Error(`active must be a positive integer (got ${active})`);
    }
    if (!Number.isSafeInteger(queue) || queue < 0) {
      throw new Error(`queue must be a non-negative integer (got ${queue})`);
    }
    this.active = active;
    this.queue = queue;
  }

  /** Callers holding a place (running, waiting, or about to). */
  get inside(): number {
    return this.#inside;
  }

  /** Jobs running now. */
  get running(): number {
    return this.#running;
  }

  /** Jobs waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Takes a place if one is free (true); false when all are taken. */
  enter(): boolean {
    if (this.#inside >= this.active + this.queue) return false;
    this.#inside++;
    return true;
  }

  /** Gives back a place taken with {@linkcode Admission.enter}. */
  leave(): void {
    this.#inside--;
  }

  /** Runs `job` as soon as one of the `active` slots is free. */
  async run<T>(job: () => Promise<T>): Promise<T> {
    if (this.#running < this.active) this.#running++;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await job();
    } finally {
      // The slot passes straight to the next in line, if any.
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }
}
