// Subscriptions from a query string and from messages: what is accepted, what each one selects, and
// the message a bad one gets back.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { parseSubscribeMessage, parseSubscriptionQuery, wantsRequest, wantsStep, type Parsed } from '../../src/telemetry/subscription.js';

const LAYERS = 4;
const ORIGINAL = { plan: 'original', mode: 'original' } as const;
const ZEROED = { plan: 'zeroed', mode: 'ablated' } as const;
const RESTORED = { plan: 'zeroed_sa_restored', mode: 'ablated' } as const;
const HALF = { plan: 'scaled_down', mode: 'scaled' } as const;

function filterOf(parsed: Parsed) {
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.message);
  return parsed.filter;
}

it('reads query strings: lists, numbers, and the API key left to auth', () => {
  const all = filterOf(parseSubscriptionQuery(new URLSearchParams('api_key=k'), LAYERS));
  assert.deepEqual(all.spec, { decode_every: 1 });
  assert.ok(wantsRequest(all, 'any', ORIGINAL) && wantsStep(all, 'decode', 3));
  const some = filterOf(parseSubscriptionQuery(new URLSearchParams('request_ids=a,b&modes=ablated,scaled&layers=0,3&decode_every=4'), LAYERS));
  assert.deepEqual(some.spec, { request_ids: ['a', 'b'], modes: ['ablated', 'scaled'], layers: [0, 3], decode_every: 4 });
  assert.deepEqual([wantsRequest(some, 'a', ZEROED), wantsRequest(some, 'a', ORIGINAL), wantsRequest(some, 'c', HALF)], [true, false, false]);
  // Plans tell apart what the coarse mode lumps together.
  const zeroedOnly = filterOf(parseSubscriptionQuery(new URLSearchParams('plans=zeroed'), LAYERS));
  assert.deepEqual(zeroedOnly.spec, { plans: ['zeroed'], decode_every: 1 });
  assert.deepEqual([wantsRequest(zeroedOnly, 'a', ZEROED), wantsRequest(zeroedOnly, 'a', RESTORED), wantsRequest(zeroedOnly, 'a', ORIGINAL)], [true, false, false]);
  assert.deepEqual([0, 1, 4, 8].map((step) => wantsStep(some, step === 0 ? 'prefill' : 'decode', step)), [true, false, true, true]);
  const prefillOnly = filterOf(parseSubscriptionQuery(new URLSearchParams('decode_every=0'), LAYERS));
  assert.deepEqual([wantsStep(prefillOnly, 'prefill', 0), wantsStep(prefillOnly, 'decode', 2)], [true, false]);
});

it('answers bad subscriptions with a message naming the field', () => {
  const cases: [Parsed, RegExp][] = [
    [parseSubscriptionQuery(new URLSearchParams('layers=4'), LAYERS), /layers: layer 4 does not exist/],
    [parseSubscriptionQuery(new URLSearchParams('decode_every=x'), LAYERS), /decode_every/],
    [parseSubscriptionQuery(new URLSearchParams('mode=ablated'), LAYERS), /bad subscription/],
    [parseSubscribeMessage('{', LAYERS), /must be JSON/],
    [parseSubscribeMessage('{"type": "subscribe", "modes": []}', LAYERS), /modes/],
    [parseSubscriptionQuery(new URLSearchParams('plans=halved'), LAYERS), /plans\[0\]/],
    [parseSubscribeMessage('{"modes": ["ablated"]}', LAYERS), /type/],
  ];
  for (const [parsed, message] of cases) {
    assert.equal(parsed.ok, false);
    if (!parsed.ok) assert.match(parsed.message, message);
  }
  assert.deepEqual(filterOf(parseSubscribeMessage('{"type": "subscribe", "layers": [1]}', LAYERS)).spec, { layers: [1], decode_every: 1 });
});
