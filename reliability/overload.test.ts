// 5x overload: five times as many concurrent requests as the server admits (maxNumSeqs + maxWaiting,
// 80 with config/server.json). Each answer is either a complete completion or 429 with Retry-After
// in the envelope; nothing waits in an unbounded queue, and every admitted request completes.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { ChildServer } from '../test/helpers/child-server.js';
import { envelopeProblem, exchange, figure, MODEL, postJson, startDemoServer } from './support.js';

const CAPACITY = 16 + 64;
const REQUESTS = 5 * CAPACITY;
// Long enough that the admitted requests are still running while the rest arrive.
const TOKENS = 64;

let server: ChildServer;
before(async () => {
  server = await startDemoServer();
});
after(async () => {
  await server?.stop();
});

it(`${REQUESTS} concurrent requests against a capacity of ${CAPACITY}: complete or 429 with Retry-After`, async () => {
  const ready = await exchange(server.url, { method: 'GET', path: '/ready' });
  assert.ok(!('error' in ready));
  assert.equal((JSON.parse(ready.body.toString()) as { capacity: number }).capacity, CAPACITY);
  const started = Date.now();
  const answers = await Promise.all(
    Array.from({ length: REQUESTS }, async () => {
      const t0 = Date.now();
      const res = await postJson(server.url, '/v1/completions', { model: MODEL, prompt: 'The city of', max_tokens: TOKENS, ignore_eos: true, temperature: 0 });
      return { res, ms: Date.now() - t0 };
    }),
  );
  const elapsed = Date.now() - started;
  const problems: string[] = [];
  let completed = 0;
  let refused = 0;
  const refusalMs: number[] = [];
  for (const { res, ms } of answers) {
    if ('error' in res) {
      problems.push(`connection error ${res.error}`);
      continue;
    }
    const body = res.body.toString('utf8');
    if (res.status === 200) {
      const json = JSON.parse(body) as { choices: { finish_reason: string }[]; usage: { completion_tokens: number } };
      if (json.choices[0]!.finish_reason !== 'length' || json.usage.completion_tokens !== TOKENS) problems.push(`an admitted request ended early: ${body.slice(0, 200)}`);
      else completed++;
    } else if (res.status === 429) {
      const problem = envelopeProblem(429, body);
      if (problem) problems.push(problem);
      else if (!/^\d+$/.test(String(res.headers['retry-after']))) problems.push('429 without a Retry-After of seconds');
      else {
        refused++;
        refusalMs.push(ms);
      }
    } else {
      problems.push(`status ${res.status}: ${body.slice(0, 200)}`);
    }
  }
  refusalMs.sort((a, b) => a - b);
  figure('overload requests', `${REQUESTS} at once, capacity ${CAPACITY}, all answered in ${(elapsed / 1000).toFixed(1)} s`);
  figure('overload admitted and completed', `${completed} (each ${TOKENS} tokens, finish_reason length)`);
  figure('overload refused with 429 + Retry-After', `${refused} (median answer ${refusalMs[Math.floor(refusalMs.length / 2)] ?? '-'} ms)`);
  assert.deepEqual(problems.slice(0, 10), [], `${problems.length} answers were neither complete nor a proper 429`);
  assert.equal(completed + refused, REQUESTS);
  assert.ok(completed >= 1 && refused >= 1, 'some were admitted and some refused');
  const after = await exchange(server.url, { method: 'GET', path: '/ready' });
  assert.ok(!('error' in after));
  assert.equal((JSON.parse(after.body.toString()) as { sequences_in_flight: number }).sequences_in_flight, 0);
});
