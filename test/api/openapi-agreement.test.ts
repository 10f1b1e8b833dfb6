// openapi.yaml against the code it describes: the zod request schemas (the single source of request
// validation), the route table, the error catalogue, and real responses from a running swserve.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import { ablationCompareSchema } from '../../src/api/ablations/schema.js';
import type { ApiContext } from '../../src/api/api-context.js';
import { routeTable } from '../../src/api/app.js';
import { chatRequestSchema } from '../../src/api/chat/schema.js';
import { completionRequestSchema } from '../../src/api/completions/schema.js';
import { responsesRequestSchema } from '../../src/api/responses/schema.js';
import { ApiError, type ApiErrorCode } from '../../src/http/errors.js';
import { ALL_ERROR_CODES } from '../helpers/error-codes.js';
import { superWeightsFieldSchema } from '../../src/api/super-weights-field.js';
import { superWeightsDetectSchema } from '../../src/api/super-weights/schema.js';
import { loadServerConfig } from '../../src/config/server-config.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { assertMatchesOpenApi, compileComponent, openApiDocument, resolvePointer, sseDataPayloads, type JsonObject } from '../helpers/openapi-validator.js';
import { PLANTED, startTestServer, type TestServer } from '../helpers/test-server.js';

// ------------------------------------------------------------------ request schemas vs zod

/** Each openapi.yaml request component and the zod schema the server validates it with. */
const REQUEST_SCHEMAS: { component: string; zodName: string; schema: z.ZodType }[] = [
  { component: 'CompletionRequest', zodName: 'completionRequestSchema', schema: completionRequestSchema },
  { component: 'ChatCompletionRequest', zodName: 'chatRequestSchema', schema: chatRequestSchema },
  { component: 'ResponsesRequest', zodName: 'responsesRequestSchema', schema: responsesRequestSchema },
  { component: 'SuperWeightsField', zodName: 'superWeightsFieldSchema', schema: superWeightsFieldSchema },
  { component: 'AblationCompareRequest', zodName: 'ablationCompareSchema', schema: ablationCompareSchema },
  { component: 'SuperWeightsDetectRequest', zodName: 'superWeightsDetectSchema', schema: superWeightsDetectSchema },
];

type Schema = JsonObject;

// Keywords that document rather than constrain; zod and the spec may differ in them freely.
const ANNOTATIONS = new Set(['$schema', '$id', '$comment', 'title', 'description', 'default', 'examples', 'example', 'deprecated', 'readOnly', 'writeOnly']);
// zod writes `.int()` as these bounds; the spec's `type: integer` means the same for JSON numbers.
const SAFE_INTEGER_BOUND = Number.MAX_SAFE_INTEGER;
// Which type a keyword constrains, to split `type: [number, 'null']` with bounds into a union.
const KEYWORD_TYPES: Record<string, string[]> = {
  minimum: ['number', 'integer'],
  maximum: ['number', 'integer'],
  exclusiveMinimum: ['number', 'integer'],
  exclusiveMaximum: ['number', 'integer'],
  multipleOf: ['number', 'integer'],
  minLength: ['string'],
  maxLength: ['string'],
  pattern: ['string'],
  format: ['string'],
  items: ['array'],
  minItems: ['array'],
  maxItems: ['array'],
  uniqueItems: ['array'],
  properties: ['object'],
  required: ['object'],
  additionalProperties: ['object'],
  propertyNames: ['object'],
  minProperties: ['object'],
  maxProperties: ['object'],
};

/**
 * One canonical form for both sides: refs inlined, allOf merged, oneOf/anyOf/type-arrays as one
 * flat anyOf, const as a one-value enum, annotations and zod's safe-integer bounds dropped, and
 * objects' additionalProperties always explicit.
 */
function normalize(input: unknown, doc: JsonObject): Schema {
  if (input === true) return {};
  if (input === false) return { not: {} };
  let s = { ...(input as Schema) };
  if (typeof s.$ref === 'string') {
    const { $ref, ...siblings } = s;
    s = { allOf: [resolvePointer(doc, decodeURIComponent($ref.slice(1))), siblings] };
  }
  for (const key of Object.keys(s)) if (ANNOTATIONS.has(key) || key.startsWith('x-')) delete s[key];
  if (Array.isArray(s.allOf)) {
    const { allOf, ...rest } = s;
    s = (allOf as unknown[]).map((part) => normalize(part, doc)).reduce((a, b) => mergeAll(a, b), normalize(rest, doc));
  }
  if (Array.isArray(s.oneOf)) {
    s.anyOf = s.oneOf;
    delete s.oneOf;
  }
  if ('const' in s) {
    s.enum = [s.const];
    delete s.const;
  }
  if (Array.isArray(s.enum) && s.type === undefined) {
    const types = new Set(s.enum.map((v) => (v === null ? 'null' : typeof v)));
    if (types.size === 1) s.type = [...types][0];
  }
  if (Array.isArray(s.type)) {
    if (s.type.length === 1) s.type = s.type[0];
    else s = { anyOf: (s.type as string[]).map((t) => Object.fromEntries(Object.entries(s).filter(([k]) => k === 'type' || !KEYWORD_TYPES[k] || KEYWORD_TYPES[k]!.includes(t)).map(([k, v]) => [k, k === 'type' ? t : v]))) };
  }
  if (Array.isArray(s.anyOf)) {
    const { anyOf, ...rest } = s;
    if (Object.keys(rest).length > 0) throw new Error(`cannot compare a union with sibling keywords ${Object.keys(rest).join(', ')}`);
    const members = (anyOf as unknown[]).map((m) => normalize(m, doc)).flatMap((m) => (Array.isArray(m.anyOf) ? (m.anyOf as Schema[]) : [m]));
    return members.length === 1 ? members[0]! : { anyOf: members };
  }
  if (s.type === 'integer') {
    if (s.maximum === SAFE_INTEGER_BOUND) delete s.maximum;
    if (s.minimum === -SAFE_INTEGER_BOUND) delete s.minimum;
  }
  if (s.properties) s.properties = Object.fromEntries(Object.entries(s.properties as Schema).map(([k, v]) => [k, normalize(v, doc)]));
  if (s.items !== undefined) s.items = normalize(s.items, doc);
  if (s.propertyNames !== undefined) {
    const names = normalize(s.propertyNames, doc);
    // Property names are strings already.
    if (names.type === 'string') delete names.type;
    if (Object.keys(names).length === 0) delete s.propertyNames;
    else s.propertyNames = names;
  }
  if (s.type === 'object') {
    const extra = s.additionalProperties;
    s.additionalProperties = extra === undefined || extra === true || isEmptySchema(extra) ? true : extra === false ? false : normalize(extra, doc);
  }
  if (Array.isArray(s.required)) s.required = [...(s.required as string[])].sort();
  if (Array.isArray(s.enum)) s.enum = [...s.enum].sort((a, b) => canonical(a).localeCompare(canonical(b)));
  return s;
}

/** allOf of object schemas (the spec composes requests from SamplingFields this way). */
function mergeAll(a: Schema, b: Schema): Schema {
  const out: Schema = { ...a };
  for (const [key, value] of Object.entries(b)) {
    if (!(key in out)) out[key] = value;
    else if (key === 'properties') {
      const mine = out.properties as Schema;
      for (const name of Object.keys(value as Schema)) if (name in mine) throw new Error(`allOf declares property ${name} twice`);
      out.properties = { ...mine, ...(value as Schema) };
    } else if (key === 'required') out.required = [...new Set([...(out.required as string[]), ...(value as string[])])].sort();
    else if (key === 'additionalProperties') out.additionalProperties = out.additionalProperties === false || value === false ? false : true;
    else if (canonical(out[key]) !== canonical(value)) throw new Error(`allOf parts disagree on ${key}`);
  }
  return out;
}

function isEmptySchema(v: unknown): boolean {
  return typeof v === 'object' && v !== null && Object.keys(v).length === 0;
}

function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, value: unknown) =>
    value && typeof value === 'object' && !Array.isArray(value) ? Object.fromEntries(Object.entries(value).sort(([a], [b]) => a.localeCompare(b))) : value,
  );
}

/** A union member's identity for pairing members across the two sides (type, item type, enum). */
function kindOf(s: Schema): string {
  if (Array.isArray(s.anyOf)) return `anyOf(${(s.anyOf as Schema[]).map(kindOf).sort().join('|')})`;
  const type = String(s.type ?? 'any');
  if (type === 'array') return `array<${s.items ? kindOf(s.items as Schema) : 'any'}>`;
  return Array.isArray(s.enum) ? `${type}=${canonical(s.enum)}` : type;
}

/** Every difference between the zod-derived and the spec's schema, each naming its field path. */
function compareSchemas(fromZod: Schema, fromSpec: Schema, where: string, diffs: string[]): void {
  if (fromZod.anyOf || fromSpec.anyOf) return compareUnions(fromZod, fromSpec, where, diffs);
  const keys = [...new Set([...Object.keys(fromZod), ...Object.keys(fromSpec)])].sort();
  for (const key of keys) {
    const a = fromZod[key];
    const b = fromSpec[key];
    if (key === 'properties') compareProperties((a ?? {}) as Schema, (b ?? {}) as Schema, where, diffs);
    else if (key === 'required') {
      const zodRequired = new Set((a ?? []) as string[]);
      const specRequired = new Set((b ?? []) as string[]);
      for (const name of zodRequired) if (!specRequired.has(name)) diffs.push(`${where}.${name}: required in zod but optional in openapi.yaml`);
      for (const name of specRequired) if (!zodRequired.has(name)) diffs.push(`${where}.${name}: required in openapi.yaml but optional in zod`);
    } else if ((key === 'items' || key === 'propertyNames' || key === 'additionalProperties') && isSchemaObject(a) && isSchemaObject(b)) {
      compareSchemas(a, b, `${where}${key === 'items' ? '[]' : `.<${key}>`}`, diffs);
    } else if (canonical(a) !== canonical(b)) {
      diffs.push(`${where}: ${key} is ${a === undefined ? 'absent' : canonical(a)} in zod but ${b === undefined ? 'absent' : canonical(b)} in openapi.yaml`);
    }
  }
}

function compareProperties(fromZod: Schema, fromSpec: Schema, where: string, diffs: string[]): void {
  for (const name of Object.keys(fromZod)) if (!(name in fromSpec)) diffs.push(`${where}.${name}: field is in zod but missing from openapi.yaml`);
  for (const name of Object.keys(fromSpec)) if (!(name in fromZod)) diffs.push(`${where}.${name}: field is in openapi.yaml but not in zod`);
  for (const name of Object.keys(fromZod)) if (name in fromSpec) compareSchemas(fromZod[name] as Schema, fromSpec[name] as Schema, `${where}.${name}`, diffs);
}

function compareUnions(fromZod: Schema, fromSpec: Schema, where: string, diffs: string[]): void {
  const a = (fromZod.anyOf ?? [fromZod]) as Schema[];
  const b = (fromSpec.anyOf ?? [fromSpec]) as Schema[];
  const kindsA = a.map(kindOf);
  const kindsB = b.map(kindOf);
  const unique = (kinds: string[]): boolean => new Set(kinds).size === kinds.length;
  // Pair members by kind so a bound that differs is reported on its own, not as a whole union.
  if (unique(kindsA) && unique(kindsB) && canonical([...kindsA].sort()) === canonical([...kindsB].sort())) {
    a.forEach((member, i) => compareSchemas(member, b[kindsB.indexOf(kindsA[i]!)]!, kindsA.length > 1 ? `${where}<${kindsA[i]}>` : where, diffs));
    return;
  }
  const setA = new Set(a.map(canonical));
  const setB = new Set(b.map(canonical));
  const onlyZod = [...setA].filter((m) => !setB.has(m));
  const onlySpec = [...setB].filter((m) => !setA.has(m));
  if (onlyZod.length > 0 || onlySpec.length > 0) diffs.push(`${where}: allowed forms differ; only in zod: ${onlyZod.join(' | ') || 'none'}; only in openapi.yaml: ${onlySpec.join(' | ') || 'none'}`);
}

function isSchemaObject(v: unknown): v is Schema {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The differences between a zod schema (as its input JSON Schema) and an openapi.yaml component. */
function requestSchemaDiffs(schema: z.ZodType, component: string): string[] {
  const doc = openApiDocument();
  const fromZod = normalize(z.toJSONSchema(schema, { io: 'input', target: 'draft-2020-12', unrepresentable: 'throw', reused: 'inline', cycles: 'throw' }), doc);
  const fromSpec = normalize({ $ref: `#/components/schemas/${component}` }, doc);
  const diffs: string[] = [];
  compareSchemas(fromZod, fromSpec, component, diffs);
  return diffs;
}

describe('openapi.yaml request schemas agree with zod', () => {
  for (const { component, zodName, schema } of REQUEST_SCHEMAS) {
    it(`${component} describes ${zodName}`, () => {
      const diffs = requestSchemaDiffs(schema, component);
      assert.deepEqual(diffs, [], `openapi.yaml ${component} disagrees with ${zodName}:\n  ${diffs.join('\n  ')}`);
    });
  }

  it('catches a zod field the spec lacks, and a bound that differs, by name', () => {
    const added = requestSchemaDiffs(completionRequestSchema.extend({ brand_new: z.number().min(0).nullish() }), 'CompletionRequest');
    assert.ok(added.some((d) => d.includes('CompletionRequest.brand_new') && d.includes('missing from openapi.yaml')), added.join('\n'));
    const bound = requestSchemaDiffs(completionRequestSchema.extend({ temperature: z.number().min(0).max(3).nullish() }), 'CompletionRequest');
    assert.deepEqual(bound, ['CompletionRequest.temperature<number>: maximum is 3 in zod but 2 in openapi.yaml']);
    const strictness = requestSchemaDiffs(chatRequestSchema.extend({ stream_options: z.object({ include_usage: z.boolean().nullish(), continuous_usage_stats: z.boolean().nullish() }).nullish() }), 'ChatCompletionRequest');
    assert.deepEqual(strictness, ['ChatCompletionRequest.stream_options<object>: additionalProperties is true in zod but false in openapi.yaml']);
  });

  // The same bodies accepted or refused by zod and by ajv on the spec: the structural comparison
  // above, checked from the other side.
  const PROBES: { component: string; schema: z.ZodType; body: unknown }[] = [
    { component: 'CompletionRequest', schema: completionRequestSchema, body: { model: 'm', prompt: 'x' } },
    { component: 'CompletionRequest', schema: completionRequestSchema, body: { model: 'm', prompt: 'x', unknown_benchmark_field: { a: 1 } } },
    { component: 'CompletionRequest', schema: completionRequestSchema, body: { model: 'm', prompt: 'x', super_weights: { scale: 0.5, select: ['1:7:33'], extra: true } } },
    { component: 'CompletionRequest', schema: completionRequestSchema, body: { model: 'm', prompt: 'x', super_weights: { scale: 0.5, select: ['1:7'] } } },
    { component: 'CompletionRequest', schema: completionRequestSchema, body: { model: 'm', prompt: 'x', super_weights: 'half' } },
    { component: 'CompletionRequest', schema: completionRequestSchema, body: { model: 'm', prompt: 'x', stream: true, stream_options: { include_usage: true, other: 1 } } },
    { component: 'CompletionRequest', schema: completionRequestSchema, body: { model: 'm', prompt: [] } },
    { component: 'CompletionRequest', schema: completionRequestSchema, body: { model: 'm', prompt: [[1, 2], [3]], temperature: null, top_p: 0 } },
    { component: 'CompletionRequest', schema: completionRequestSchema, body: { model: 'm', prompt: 'x', logit_bias: { abc: 1 } } },
    { component: 'CompletionRequest', schema: completionRequestSchema, body: { model: 'm', prompt: 'x', stop: ['a', 'b', 'c', 'd', 'e'] } },
    { component: 'CompletionRequest', schema: completionRequestSchema, body: { model: '', prompt: 'x' } },
    { component: 'ChatCompletionRequest', schema: chatRequestSchema, body: { model: 'm', messages: [{ role: 'user', content: 'hi', extra: 1 }] } },
    { component: 'ChatCompletionRequest', schema: chatRequestSchema, body: { model: 'm', messages: [{ role: 'user', content: [{ type: 'text', text: 'a', extra: 1 }] }] } },
    { component: 'ChatCompletionRequest', schema: chatRequestSchema, body: { model: 'm', messages: [{ role: 'bot', content: 'hi' }] } },
    { component: 'ChatCompletionRequest', schema: chatRequestSchema, body: { model: 'm', messages: [] } },
    { component: 'ChatCompletionRequest', schema: chatRequestSchema, body: { model: 'm', messages: [{ role: 'user', content: null }], max_tokens: 0 } },
    { component: 'AblationCompareRequest', schema: ablationCompareSchema, body: { model: 'm', prompt: 'x', states: ['on', { scale: 2 }], extra: 1 } },
    { component: 'AblationCompareRequest', schema: ablationCompareSchema, body: { model: 'm', prompt: '', states: ['on'] } },
    { component: 'AblationCompareRequest', schema: ablationCompareSchema, body: { model: 'm', prompt: [1, 2], states: Array(9).fill('off') } },
    { component: 'SuperWeightsDetectRequest', schema: superWeightsDetectSchema, body: { model: 'm', prompt: ['a', 'b'], spike_ratio: 5, chart: true, extra: 1 } },
    { component: 'SuperWeightsDetectRequest', schema: superWeightsDetectSchema, body: { model: 'm', prompt: [], max_super_weights: 0 } },
    { component: 'ResponsesRequest', schema: responsesRequestSchema, body: { model: 'm', input: 'hi', store: false, extra: 1 } },
    { component: 'ResponsesRequest', schema: responsesRequestSchema, body: { model: 'm', input: [{ role: 'user', content: [{ type: 'input_text', text: 'a' }] }] } },
    { component: 'ResponsesRequest', schema: responsesRequestSchema, body: { model: 'm', input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'x' }] }] } },
    { component: 'ResponsesRequest', schema: responsesRequestSchema, body: { model: 'm', input: [] } },
    { component: 'ResponsesRequest', schema: responsesRequestSchema, body: { model: 'm', input: 'x', metadata: { a: 1 } } },
  ];
  it('accepts and refuses the same request bodies as zod', () => {
    for (const { component, schema, body } of PROBES) {
      const ajvAccepts = compileComponent(component)(body);
      assert.equal(ajvAccepts, schema.safeParse(body).success, `${component} ${JSON.stringify(body)}: openapi.yaml ${ajvAccepts ? 'accepts' : 'refuses'} it, zod does not`);
    }
  });
});

// ------------------------------------------------------------------ routes and errors

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/**
 * routeTable only needs the context inside its handlers, but a handler factory might read a field
 * while it builds; this stand-in answers any property read or call with itself, so the table
 * builds without a model.
 */
function inertContext(): ApiContext {
  const handler: ProxyHandler<() => unknown> = {
    get: (_target, key) => (key === 'then' ? undefined : key === Symbol.toPrimitive ? () => 0 : inert),
    apply: () => inert,
  };
  const inert: unknown = new Proxy(() => undefined, handler);
  return inert as ApiContext;
}

function documentedOperations(): { method: string; path: string; operation: JsonObject }[] {
  const paths = openApiDocument().paths as Record<string, JsonObject>;
  return Object.entries(paths).flatMap(([path, item]) => HTTP_METHODS.filter((m) => m in item).map((method) => ({ method, path, operation: item[method] as JsonObject })));
}


describe('openapi.yaml routes and errors agree with the server', () => {
  it('documents exactly the routes in routeTable, with their auth', () => {
    const served = routeTable(inertContext());
    // express writes a path parameter `:name` or `*name` (segments), OpenAPI `{name}`.
    const specPath = (path: string): string => path.replace(/[:*](\w+)/g, '{$1}');
    const servedKeys = served.map((r) => `${r.method.toUpperCase()} ${specPath(r.path)}`);
    const documented = documentedOperations();
    const documentedKeys = documented.map((o) => `${o.method.toUpperCase()} ${o.path}`);
    assert.deepEqual(servedKeys.filter((k) => !documentedKeys.includes(k)), [], 'routes served but missing from openapi.yaml');
    assert.deepEqual(documentedKeys.filter((k) => !servedKeys.includes(k)), [], 'routes in openapi.yaml that routeTable does not serve');
    for (const route of served) {
      const op = documented.find((o) => o.method === route.method && o.path === specPath(route.path))!.operation;
      const security = canonical(op.security ?? openApiDocument().security ?? []);
      assert.equal(security, route.auth ? canonical([{ bearerAuth: [] }]) : canonical([]), `${route.method.toUpperCase()} ${route.path}: security does not match auth=${route.auth}`);
      if (route.auth) assert.ok('401' in (op.responses as JsonObject), `${route.method.toUpperCase()} ${route.path} is behind the API key but documents no 401`);
    }
  });

  it('lists every error code, each under its status with its type', () => {
    const specCodes = (resolvePointer(openApiDocument(), '/components/schemas/ErrorCode/enum') as string[]).slice().sort();
    assert.deepEqual(specCodes, Object.keys(ALL_ERROR_CODES).sort());
    const everywhere = [...documentedOperations(), { method: 'get', path: '/no/such/route' }];
    for (const code of Object.keys(ALL_ERROR_CODES) as ApiErrorCode[]) {
      const error = new ApiError(code, 'probe');
      const matches = (method: string, path: string, status: number): boolean => {
        try {
          assertMatchesOpenApi(method, path, status, error.toJSON());
          return true;
        } catch {
          return false;
        }
      };
      const where = everywhere.filter(({ method, path }) => matches(method, path, error.status));
      assert.ok(where.length > 0, `${code} (${error.status}, ${error.toJSON().error.type}) is not documented for any route`);
      // Nowhere under another status: the spec's status for a code is the server's.
      const otherStatuses = [400, 401, 404, 405, 408, 413, 415, 429, 431, 500, 503].filter((s) => s !== error.status);
      for (const { method, path } of everywhere) for (const s of otherStatuses) assert.ok(!matches(method, path, s), `${code} validates as ${method.toUpperCase()} ${path} ${s}, but the server sends it with ${error.status}`);
    }
    // Codes a generation request can meet are documented on every generation route.
    for (const path of ['/v1/completions', '/v1/chat/completions', '/v1/responses', '/v1/ablations/compare']) {
      for (const code of Object.keys(ALL_ERROR_CODES) as ApiErrorCode[]) {
        if (code === 'route_not_found' || code === 'method_not_allowed') continue;
        const error = new ApiError(code, 'probe');
        assertMatchesOpenApi('post', path, error.status, error.toJSON());
      }
    }
  });

  it('rejects bodies the spec does not describe', () => {
    assert.throws(() => assertMatchesOpenApi('get', '/health', 200, { status: 'ok', extra: 1 }), /extra|additional/i);
    assert.throws(() => assertMatchesOpenApi('get', '/health', 418, { status: 'ok' }), /does not document/);
    assert.throws(() => assertMatchesOpenApi('get', '/health', 200, { status: 'ok' }, 'sse-chunk'), /text\/event-stream/);
    assert.throws(() => assertMatchesOpenApi('post', '/v1/completions', 200, '{"object":"text_completion"}', 'sse-chunk'), /must have required property/);
    assertMatchesOpenApi('post', '/v1/completions', 200, '[DONE]', 'sse-chunk');
  });
});

// ------------------------------------------------------------------ real responses

// A body just over the default maxBodyBytes (config/server.json: 1 MiB).
const OVERSIZED_BODY_BYTES = 1024 * 1024 + 1024;
const API_KEY = 'k';

interface Exchange {
  status: number;
  headers: Headers;
  text: string;
}

async function call(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Exchange> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] = 'application/json';
  }
  const res = await fetch(`${base}${path}`, init);
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** Calls a route and checks its JSON answer against the spec; returns the parsed body. */
async function checked(base: string, method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; headers: Headers; json: JsonObject }> {
  const r = await call(base, method, path, body, headers);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/, `${method} ${path} ${r.status}: ${r.text.slice(0, 200)}`);
  const json = JSON.parse(r.text) as JsonObject;
  assertMatchesOpenApi(method, path, r.status, json);
  if (r.status === 429 || r.status === 503) assert.match(r.headers.get('retry-after') ?? '', /^\d+$/, `${method} ${path} ${r.status} without Retry-After`);
  return { status: r.status, headers: r.headers, json };
}

/** Streams a route and checks every chunk; returns the parsed chunks (without [DONE]). */
async function checkedStream(base: string, path: string, body: unknown): Promise<JsonObject[]> {
  const r = await call(base, 'POST', path, body);
  assert.equal(r.status, 200, r.text.slice(0, 200));
  assert.match(r.headers.get('content-type') ?? '', /^text\/event-stream/);
  const payloads = sseDataPayloads(r.text);
  assert.equal(payloads[payloads.length - 1], '[DONE]', 'a stream ends with data: [DONE]');
  const chunks = payloads.slice(0, -1).map((p) => JSON.parse(p) as JsonObject);
  assert.ok(chunks.length > 0);
  for (const chunk of chunks) assertMatchesOpenApi('POST', path, 200, chunk, 'sse-chunk');
  return chunks;
}

describe('real responses match openapi.yaml', () => {
  let server: TestServer;
  let keyed: TestServer;
  let model: string;

  before(async () => {
    // The second server has an API key and room for one sequence, for 401 and 429.
    [server, keyed] = await Promise.all([startTestServer(), startTestServer({ config: { apiKey: API_KEY, limits: { maxNumSeqs: 1, maxWaiting: 0 } } })]);
    model = server.modelId;
  });
  after(async () => {
    await Promise.all([server?.close(), keyed?.close()]);
  });

  it('completions: plain, logprobs with echo, n=2, switched super weights', async () => {
    const plain = await checked(server.url, 'POST', '/v1/completions', { model, prompt: 'Winter', max_tokens: 4, temperature: 0 });
    assert.equal(plain.status, 200);
    const echoed = await checked(server.url, 'POST', '/v1/completions', { model, prompt: 'Winter', max_tokens: 3, temperature: 0, logprobs: 2, echo: true });
    assert.equal(echoed.status, 200);
    const two = await checked(server.url, 'POST', '/v1/completions', { model, prompt: ['Winter', 'Summer'], max_tokens: 3, n: 2, temperature: 1, seed: 3 });
    assert.equal((two.json.choices as unknown[]).length, 4);
    const off = await checked(server.url, 'POST', '/v1/completions', { model, prompt: 'Winter', max_tokens: 2 }, { 'X-Super-Weights': 'off' });
    assert.equal((off.json.super_weights as JsonObject).mode, 'ablated');
    const id = `${PLANTED.layer}:${PLANTED.row}:${PLANTED.col}`;
    const scaled = await checked(server.url, 'POST', '/v1/completions', { model, prompt: [1, 2, 3], max_tokens: 2, super_weights: { scale: 0.5, select: [id], restore_activation: true } });
    assert.equal((scaled.json.super_weights as JsonObject).mode, 'scaled');
  });

  it('completions stream with include_usage and logprobs', async () => {
    const chunks = await checkedStream(server.url, '/v1/completions', { model, prompt: 'Winter', max_tokens: 5, temperature: 0, logprobs: 1, echo: true, stream: true, stream_options: { include_usage: true } });
    assert.ok(chunks[0]!.super_weights, 'the first chunk carries super_weights');
    assert.ok(chunks[chunks.length - 1]!.usage, 'the last chunk carries usage');
  });

  it('chat: plain, logprobs, stream with include_usage', async () => {
    const messages = [{ role: 'user', content: 'Hello' }];
    const plain = await checked(server.url, 'POST', '/v1/chat/completions', { model, messages, max_tokens: 4, temperature: 0 });
    assert.equal(plain.status, 200);
    const withLogprobs = await checked(server.url, 'POST', '/v1/chat/completions', { model, messages: [{ role: 'system', content: [{ type: 'text', text: 'Be brief.' }] }, ...messages], max_completion_tokens: 3, logprobs: true, top_logprobs: 2, n: 2 });
    assert.equal(withLogprobs.status, 200);
    const chunks = await checkedStream(server.url, '/v1/chat/completions', { model, messages, max_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 1, stream: true, stream_options: { include_usage: true } });
    assert.deepEqual(((chunks[0]!.choices as JsonObject[])[0]!.delta as JsonObject).role, 'assistant');
  });

  it('ablations: default states, and explicit ones', async () => {
    const defaults = await checked(server.url, 'POST', '/v1/ablations/compare', { model, prompt: 'Winter', max_tokens: 3 });
    assert.equal(defaults.status, 200);
    assert.equal((defaults.json.states as unknown[]).length, 2);
    const explicit = await checked(server.url, 'POST', '/v1/ablations/compare', { model, prompt: [1, 2, 3], max_tokens: 2, temperature: 0.7, seed: 4, states: ['off', { scale: 2 }, 'on'] });
    assert.equal((explicit.json.states as unknown[]).length, 3);
  });

  it('super weights: the list in force, and detection', async () => {
    const list = await checked(server.url, 'GET', '/v1/super_weights');
    assert.equal((list.json.data as unknown[]).length, 1);
    const detected = await checked(server.url, 'POST', '/v1/super_weights/detect', { model, prompt: 'Winter is', chart: true });
    assert.equal((detected.json.super_weights as JsonObject[])[0]!.id, `${PLANTED.layer}:${PLANTED.row}:${PLANTED.col}`);
  });

  it('responses: plain, and streamed as named events without [DONE]', async () => {
    const plain = await checked(server.url, 'POST', '/v1/responses', { model, input: 'Winter', instructions: 'Be brief.', max_output_tokens: 4, temperature: 0, metadata: { run: '1' } });
    assert.equal(plain.json.object, 'response');
    const r = await call(server.url, 'POST', '/v1/responses', { model, input: [{ role: 'user', content: [{ type: 'input_text', text: 'Winter' }] }], max_output_tokens: 3, stream: true, super_weights: 'off' });
    assert.equal(r.status, 200);
    const events = r.text.split('\n\n').filter((e) => e.startsWith('event: '));
    assert.ok(events.length >= 8);
    for (const e of events) {
      const [nameLine, dataLine] = e.split('\n');
      const data = JSON.parse(dataLine!.slice('data: '.length)) as JsonObject;
      assert.equal(nameLine, `event: ${String(data.type)}`);
      assertMatchesOpenApi('POST', '/v1/responses', 200, data, 'sse-chunk');
    }
    assert.ok(!r.text.includes('[DONE]'));
  });

  it('models, one model, health, ready, the activation probe', async () => {
    assert.equal((await checked(server.url, 'GET', '/v1/models')).status, 200);
    assert.equal((await checked(server.url, 'GET', `/v1/models/${model}`)).status, 200);
    assert.equal((await checked(server.url, 'GET', '/v1/models/other')).status, 404);
    assert.equal((await checked(server.url, 'GET', '/v1/activations?plans=zeroed&layers=0')).status, 200);
    assert.equal((await checked(server.url, 'GET', '/v1/activations?layers=99')).status, 400);
    assert.equal((await checked(server.url, 'GET', '/metrics?format=json')).status, 400);
    assert.equal((await checked(server.url, 'GET', '/?theme=dark')).status, 400);
    assert.equal((await checked(server.url, 'GET', '/health')).status, 200);
    assert.equal((await checked(server.url, 'GET', '/ready')).status, 200);
  });

  it('errors: 400, 404, 413', async () => {
    const cases: { method: string; path: string; body?: unknown; status: number; code: string }[] = [
      { method: 'POST', path: '/v1/completions', body: { model, prompt: 'x', temperature: 5 }, status: 400, code: 'invalid_request' },
      { method: 'POST', path: '/v1/completions', body: '{"model": ', status: 400, code: 'invalid_json' },
      { method: 'POST', path: '/v1/completions', body: { model, prompt: 'x', best_of: 2 }, status: 400, code: 'unsupported_parameter' },
      { method: 'POST', path: '/v1/chat/completions', body: { model, messages: [{ role: 'user', content: 'x' }], super_weights: { scale: 1, extra: 1 } }, status: 400, code: 'invalid_request' },
      { method: 'POST', path: '/v1/chat/completions', body: { model: 'nope', messages: [{ role: 'user', content: 'x' }] }, status: 404, code: 'model_not_found' },
      { method: 'POST', path: '/v1/ablations/compare', body: { model, prompt: 'x', states: [] }, status: 400, code: 'invalid_request' },
      { method: 'POST', path: '/v1/ablations/compare', body: { model: 'nope', prompt: 'x' }, status: 404, code: 'model_not_found' },
      { method: 'GET', path: '/v1/no-such-route', status: 404, code: 'route_not_found' },
      { method: 'GET', path: '/v1/completions', status: 405, code: 'method_not_allowed' },
      { method: 'POST', path: '/v1/completions', body: { model, prompt: 'a'.repeat(OVERSIZED_BODY_BYTES) }, status: 413, code: 'body_too_large' },
    ];
    for (const c of cases) {
      const r = await checked(server.url, c.method, c.path, c.body);
      assert.equal(r.status, c.status, `${c.method} ${c.path}: ${JSON.stringify(r.json)}`);
      assert.equal((r.json.error as JsonObject).code, c.code);
    }
  });

  it('errors: 401 with an API key, 429 when full', async () => {
    const missing = await checked(keyed.url, 'GET', '/v1/models');
    assert.equal(missing.status, 401);
    const wrong = await checked(keyed.url, 'POST', '/v1/completions', { model, prompt: 'x' }, { authorization: 'Bearer wrong' });
    assert.equal(wrong.status, 401);
    assert.equal((await checked(keyed.url, 'GET', '/v1/models', undefined, { authorization: `Bearer ${API_KEY}` })).status, 200);
    assert.equal((await checked(keyed.url, 'GET', '/health')).status, 200);
    // One long stream holds the only slot; the next request is turned away.
    const holder = new AbortController();
    const held = await fetch(`${keyed.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({ model, prompt: 'x', max_tokens: 400, ignore_eos: true, stream: true }),
      signal: holder.signal,
    });
    assert.equal(held.status, 200);
    const full = await checked(keyed.url, 'POST', '/v1/completions', { model, prompt: 'x', max_tokens: 1 }, { authorization: `Bearer ${API_KEY}` });
    holder.abort();
    assert.equal(full.status, 429);
  });

  it('errors: 503 from a server whose model cannot load', async () => {
    const config = loadServerConfig({ env: {}, flags: { model: '/nonexistent/swserve-openapi-model', port: 0, host: '127.0.0.1' } });
    const broken: RunningServer = await startServer(config, () => {});
    try {
      for (const [method, path, body] of [
        ['GET', '/health', undefined],
        ['GET', '/ready', undefined],
        ['GET', '/v1/models', undefined],
        ['POST', '/v1/completions', { model, prompt: 'x' }],
        ['GET', '/no/such/route', undefined],
      ] as const) {
        const r = await checked(broken.url, method, path, body);
        assert.equal(r.status, 503, `${method} ${path}`);
      }
    } finally {
      await broken.shutdown();
    }
  });
});
