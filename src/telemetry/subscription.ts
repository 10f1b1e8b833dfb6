// What one WebSocket client wants to see: all traffic or chosen request ids, optionally only some
// switch plans (e.g. only zeroed traffic) or coarse modes, a layer subset, and every N-th decode step. Given as a
// query string at connect and replaced by a {"type": "subscribe", ...} message.
import { z } from 'zod';
import { SWITCH_PLAN_LABELS } from '../model/switch-plan.js';
import { firstZodIssue } from '../util/zod-issue.js';
import type { WireSwitch } from './stream-frames.js';

// Bounds that keep one client's filter cheap to evaluate per frame.
const MAX_REQUEST_IDS = 256;
const MAX_DECODE_EVERY = 1_000_000;

export const SWITCH_MODES = ['original', 'ablated', 'scaled'] as const;

const fields = {
  /** Only these request ids (the response id or the client's X-Request-Id); absent = all traffic. */
  request_ids: z.array(z.string().min(1)).min(1).max(MAX_REQUEST_IDS).optional(),
  /** Only requests under these switch plans; absent = every plan. */
  plans: z.array(z.enum(SWITCH_PLAN_LABELS)).min(1).optional(),
  /** Only requests under these coarse modes (older clients); absent = every mode. */
  modes: z.array(z.enum(SWITCH_MODES)).min(1).optional(),
  /** Only these layers in `layers`; absent = every layer. */
  layers: z.array(z.number().int().min(0)).min(1).optional(),
  /** Send decode steps whose step number is a multiple of this; 0 sends prefill frames only. */
  decode_every: z.number().int().min(0).max(MAX_DECODE_EVERY).default(1),
};

export const subscriptionSchema = z.strictObject(fields);
export const subscribeMessageSchema = z.strictObject({ type: z.literal('subscribe'), ...fields });

export type Subscription = z.infer<typeof subscriptionSchema>;

/** A subscription made fast to test: sets instead of arrays. */
export interface SubscriptionFilter {
  spec: Subscription;
  requestIds: ReadonlySet<string> | null;
  plans: ReadonlySet<string> | null;
  modes: ReadonlySet<string> | null;
  layers: ReadonlySet<number> | null;
}

export type Parsed = { ok: true; filter: SubscriptionFilter } | { ok: false; message: string };

/** `?request_ids=a,b&plans=zeroed,zeroed_sa_restored&layers=0,1&decode_every=4` */
export function parseSubscriptionQuery(query: URLSearchParams, numLayers: number): Parsed {
  const raw: Record<string, unknown> = {};
  for (const [key, value] of query) {
    if (key === 'api_key') continue;
    const list = value.split(',').map((v) => v.trim()).filter((v) => v !== '');
    raw[key] = key === 'layers' ? list.map(Number) : key === 'decode_every' ? Number(value) : list;
  }
  return toFilter(subscriptionSchema.safeParse(raw), numLayers);
}

/** A client's JSON message: only `subscribe` exists. */
export function parseSubscribeMessage(text: string, numLayers: number): Parsed {
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    return { ok: false, message: 'messages must be JSON, e.g. {"type": "subscribe", "plans": ["zeroed"]}' };
  }
  const parsed = subscribeMessageSchema.safeParse(message);
  if (!parsed.success) return toFilter(parsed, numLayers);
  const { type: _type, ...spec } = parsed.data;
  return toFilter({ success: true, data: spec }, numLayers);
}

export function wantsRequest(filter: SubscriptionFilter, requestId: string, applied: Pick<WireSwitch, 'plan' | 'mode'>): boolean {
  return (
    (filter.requestIds === null || filter.requestIds.has(requestId)) &&
    (filter.plans === null || filter.plans.has(applied.plan)) &&
    (filter.modes === null || filter.modes.has(applied.mode))
  );
}

export function wantsStep(filter: SubscriptionFilter, phase: 'prefill' | 'decode', step: number): boolean {
  if (phase === 'prefill') return true;
  const every = filter.spec.decode_every;
  return every > 0 && step % every === 0;
}

function toFilter(parsed: { success: true; data: Subscription } | { success: false; error: z.ZodError }, numLayers: number): Parsed {
  if (!parsed.success) {
    const { path, message } = firstZodIssue(parsed.error);
    return { ok: false, message: `bad subscription: ${path ? `${path}: ` : ''}${message}` };
  }
  const spec = parsed.data;
  const beyond = spec.layers?.find((l) => l >= numLayers);
  if (beyond !== undefined) return { ok: false, message: `bad subscription: layers: layer ${beyond} does not exist (the model has ${numLayers} layers)` };
  return {
    ok: true,
    filter: {
      spec,
      requestIds: spec.request_ids ? new Set(spec.request_ids) : null,
      plans: spec.plans ? new Set(spec.plans) : null,
      modes: spec.modes ? new Set(spec.modes) : null,
      layers: spec.layers ? new Set(spec.layers) : null,
    },
  };
}
