// The job core both completion endpoints and the comparison share: an opened job's events are
// pulled ahead of the reader, so a failure that arrives while nobody reads must wait for the reader
// instead of escaping as an unhandled rejection (which ends a Node process).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { ApiError } from '../../src/http/errors.js';
import { openJob, type GenerationJob } from '../../src/api/generation-job.js';
import { toSampling } from '../../src/api/sampling-fields.js';
import { ORIGINAL_SWITCH, scaledPlan } from '../../src/model/switch-plan.js';
import { PLANTED, startTestServer, type TestServer } from '../helpers/test-server.js';

// Far beyond float32 once multiplied by the planted weight, so the engine refuses the state.
const OVERFLOWING_SCALE = 1e38;

describe('an opened job', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.close();
  });

  it('holds an error that arrives while nobody reads until the reader gets there', async () => {
    const unhandled: unknown[] = [];
    const record = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', record);
    try {
      const member = (index: number, plan: GenerationJob['switchPlan']): GenerationJob => ({
        id: `job-cmp-${index}`,
        prompts: [{ text: 'Hi' }],
        n: 1,
        settings: { maxTokens: 4, sampling: toSampling({ model: 'tiny', temperature: 0 }, 0), stop: [], stopTokenIds: [], ignoreEos: false, minTokens: 0 },
        promptLogprobs: null,
        switchPlan: plan,
        promptParam: 'prompt',
        switchParam: `states[${index}]`,
        comparison: { group: 'job-cmp', index, size: 2, stopWordIds: [] },
      });
      const signal = new AbortController().signal;
      // State 0 is accepted; state 1's refusal then ends it while its events are not being read.
      const first = await openJob(server.engine, member(0, ORIGINAL_SWITCH), signal);
      await assert.rejects(openJob(server.engine, member(1, scaledPlan([PLANTED], OVERFLOWING_SCALE)), signal), (err: unknown) => {
        assert.ok(err instanceof ApiError);
        assert.equal(err.param, 'states[1]');
        return true;
      });
      for (let i = 0; i < 10; i++) await nextTurn();
      assert.deepEqual(unhandled, []);
      await assert.rejects(
        (async () => {
          for await (const _ of first.events);
        })(),
        (err: unknown) => err instanceof ApiError && /state 1 was refused/.test(err.message),
      );
    } finally {
      process.off('unhandledRejection', record);
    }
  });
});
