// Checks real response bodies against openapi.yaml, so the published contract and the server cannot
// drift apart unnoticed. The document is parsed and registered with ajv once; each (route, status,
// media type) schema is compiled on first use and cached, because API tests call this on every
// response they receive.
import { AssertionError } from 'node:assert';
import fs from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { parse } from 'yaml';

export type OpenApiContentType = 'json' | 'sse-chunk';

export type JsonObject = { [key: string]: unknown };

const SPEC_FILE = 'openapi.yaml';
// Refs inside the document are `#/...`; giving the document an absolute id lets ajv resolve them
// from any subschema we compile.
const DOC_ID = 'https://swserve.local/openapi.yaml';
const MEDIA_TYPE: Record<OpenApiContentType, string> = { json: 'application/json', 'sse-chunk': 'text/event-stream' };
// The stream's terminator: documented, and not JSON.
const SSE_DONE = '[DONE]';
// Where openapi.yaml describes what any undocumented path or method answers.
const UNMATCHED_ROUTE_KEY = 'x-unmatched-route';
// Keywords of OpenAPI 3.1's schema dialect that plain JSON Schema 2020-12 does not define; ajv's
// strict mode would otherwise reject them, and we want strict mode to catch typos in the spec.
const OPENAPI_SCHEMA_KEYWORDS = ['discriminator', 'xml', 'externalDocs', 'example'];
// Enough of a failing body to see what went wrong without flooding the test output.
const MAX_BODY_EXCERPT = 2000;

interface Loaded {
  doc: JsonObject;
  ajv: Ajv2020;
  validators: Map<string, ValidateFunction>;
  /** Documented paths with `{param}` segments, as regexes, for paths that are not literal keys. */
  templates: { template: string; pattern: RegExp }[];
}

let loaded: Loaded | undefined;

/** openapi.yaml at the repository root, found by walking up from this file (src or dist). */
export function openApiPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, SPEC_FILE);
    if (fs.existsSync(candidate) && fs.existsSync(join(dir, 'package.json'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`${SPEC_FILE} not found above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

function load(): Loaded {
  if (loaded) return loaded;
  const doc = parse(fs.readFileSync(openApiPath(), 'utf8')) as JsonObject;
  const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true });
  for (const keyword of OPENAPI_SCHEMA_KEYWORDS) ajv.addKeyword(keyword);
  // ajv compiles the registered document as a schema when resolving refs into it; its top-level
  // OpenAPI members (openapi, info, paths, ...) are not keywords, so declare them as annotations.
  for (const key of Object.keys(doc)) if (!ajv.getKeyword(key)) ajv.addKeyword(key);
  ajv.addSchema({ ...doc, $id: DOC_ID });
  const templates = Object.keys(asObject(doc.paths, 'paths'))
    .filter((p) => p.includes('{'))
    .map((template) => ({ template, pattern: new RegExp(`^${template.split(/\{[^}]+\}/).map(escapeRegExp).join('[^/]+')}$`) }));
  loaded = { doc, ajv, validators: new Map(), templates };
  return loaded;
}

/** The parsed openapi.yaml (shared; do not mutate). */
export function openApiDocument(): JsonObject {
  return load().doc;
}

/** A validator for one `components/schemas` entry (e.g. a request body), compiled once. */
export function compileComponent(name: string): ValidateFunction {
  const state = load();
  const pointer = `/components/schemas/${escapePointer(name)}`;
  // Fails with the component's name rather than ajv's "can't resolve reference".
  resolvePointer(state.doc, pointer);
  return compilePointer(state, pointer);
}

/**
 * Throws an AssertionError naming every mismatch when `body` is not what openapi.yaml documents
 * for `method path` answering `status`. With 'sse-chunk', `body` is one `data:` event's JSON
 * (parsed, or the raw string; `[DONE]` passes).
 */
export function assertMatchesOpenApi(method: string, path: string, status: number, body: unknown, contentType: OpenApiContentType = 'json'): void {
  const route = `${method.toUpperCase()} ${path}`;
  if (contentType === 'sse-chunk' && typeof body === 'string') {
    if (body.trim() === SSE_DONE) return;
    try {
      body = JSON.parse(body);
    } catch {
      fail(`${route} ${status}: SSE data is neither JSON nor ${SSE_DONE}: ${excerpt(body)}`, body, contentType);
    }
  }
  const validate = validatorFor(method, path, status, contentType);
  if (validate(body)) return;
  const errors = [...new Set((validate.errors ?? []).map(describeError))].join('\n  ');
  fail(`${route} ${status} (${MEDIA_TYPE[contentType]}) does not match openapi.yaml:\n  ${errors}\nbody: ${excerpt(body)}`, body, contentType);
}

function validatorFor(method: string, rawPath: string, status: number, contentType: OpenApiContentType): ValidateFunction {
  const m = method.toLowerCase();
  const routePath = normalizePath(rawPath);
  const key = `${m} ${routePath} ${status} ${contentType}`;
  const state = load();
  const cached = state.validators.get(key);
  if (cached) return cached;

  const route = `${m.toUpperCase()} ${routePath}`;
  const responses = responsesFor(state, m, routePath);
  const statusKey = [String(status), `${String(status)[0]}XX`, 'default'].find((k) => k in responses.map);
  if (!statusKey) {
    throw new AssertionError({ message: `${route} answered ${status}, which openapi.yaml does not document (documented: ${Object.keys(responses.map).join(', ')})` });
  }
  let pointer = `${responses.pointer}/${escapePointer(statusKey)}`;
  let response = asObject(responses.map[statusKey], pointer);
  // A response may be a $ref to components/responses (possibly chained).
  while (typeof response.$ref === 'string') {
    pointer = localPointer(response.$ref);
    response = asObject(resolvePointer(state.doc, pointer), pointer);
  }
  const mediaType = MEDIA_TYPE[contentType];
  const content = (response.content ?? {}) as JsonObject;
  if (!(mediaType in content)) {
    throw new AssertionError({ message: `${route} ${status}: openapi.yaml documents no ${mediaType} body (documented: ${Object.keys(content).join(', ') || 'none'})` });
  }
  const schemaPointer = `${pointer}/content/${escapePointer(mediaType)}/schema`;
  const validate = compilePointer(state, schemaPointer);
  state.validators.set(key, validate);
  return validate;
}

/** Compiles the schema at a JSON pointer into the document once, however many routes share it. */
function compilePointer(state: Loaded, pointer: string): ValidateFunction {
  const key = `schema #${pointer}`;
  let validate = state.validators.get(key);
  if (!validate) {
    // A JSON pointer in a URI fragment is percent-encoded per segment (ajv decodes it back).
    const fragment = pointer.split('/').map(encodeURIComponent).join('/');
    validate = state.ajv.compile({ $ref: `${DOC_ID}#${fragment}` });
    state.validators.set(key, validate);
  }
  return validate;
}

/** The operation's responses, or the document's description of unmatched routes. */
function responsesFor(state: Loaded, method: string, routePath: string): { map: JsonObject; pointer: string } {
  const paths = asObject(state.doc.paths, 'paths');
  const template = routePath in paths ? routePath : state.templates.find((t) => t.pattern.test(routePath))?.template;
  const item = template === undefined ? undefined : (paths[template] as JsonObject | undefined);
  const operation = item?.[method] as JsonObject | undefined;
  if (template !== undefined && operation) {
    return { map: asObject(operation.responses, `${method} ${template} responses`), pointer: `/paths/${escapePointer(template)}/${method}/responses` };
  }
  const unmatched = asObject(state.doc[UNMATCHED_ROUTE_KEY], UNMATCHED_ROUTE_KEY);
  return { map: asObject(unmatched.responses, `${UNMATCHED_ROUTE_KEY}.responses`), pointer: `/${escapePointer(UNMATCHED_ROUTE_KEY)}/responses` };
}

/** Accepts '/v1/models', '/v1/models?x=1' or a full URL. */
function normalizePath(raw: string): string {
  const pathname = /^https?:\/\//i.test(raw) ? new URL(raw).pathname : raw.split(/[?#]/)[0]!;
  return pathname.length > 1 ? pathname.replace(/\/+$/, '') : pathname;
}

/** Splits a text/event-stream body into its `data:` payloads (comments and other fields dropped). */
export function sseDataPayloads(text: string): string[] {
  const payloads: string[] = [];
  for (const event of text.split(/\r?\n\r?\n/)) {
    const data = event
      .split(/\r?\n/)
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice('data:'.length).replace(/^ /, ''));
    if (data.length > 0) payloads.push(data.join('\n'));
  }
  return payloads;
}

/** One ajv error as `body/path message (detail)`, naming the offending property or allowed values. */
function describeError(e: ErrorObject): string {
  const params = e.params as { additionalProperty?: string; allowedValues?: unknown[]; allowedValue?: unknown };
  const detail =
    params.additionalProperty !== undefined ? `: ${params.additionalProperty}` : params.allowedValues ? `: ${JSON.stringify(params.allowedValues)}` : 'allowedValue' in params ? `: ${JSON.stringify(params.allowedValue)}` : '';
  return `body${e.instancePath} ${e.message ?? e.keyword}${detail}`;
}

function fail(message: string, actual: unknown, contentType: OpenApiContentType): never {
  throw new AssertionError({ message, actual, expected: `openapi.yaml ${MEDIA_TYPE[contentType]} schema`, operator: 'assertMatchesOpenApi' });
}

export function resolvePointer(doc: unknown, pointer: string): unknown {
  let node = doc;
  for (const raw of pointer.split('/').slice(1)) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (node === null || typeof node !== 'object' || !(part in node)) throw new Error(`openapi.yaml has nothing at #${pointer}`);
    node = (node as JsonObject)[part];
  }
  return node;
}

function localPointer(ref: string): string {
  if (!ref.startsWith('#/')) throw new Error(`openapi.yaml: only local refs are supported, got ${ref}`);
  return decodeURIComponent(ref.slice(1));
}

function escapePointer(part: string): string {
  return part.replace(/~/g, '~0').replace(/\//g, '~1');
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function asObject(value: unknown, where: string): JsonObject {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error(`openapi.yaml: expected an object at ${where}`);
  return value as JsonObject;
}

function excerpt(body: unknown): string {
  let text: string;
  try {
    text = typeof body === 'string' ? body : (JSON.stringify(body) ?? String(body));
  } catch {
    text = String(body);
  }
  return text.length > MAX_BODY_EXCERPT ? `${text.slice(0, MAX_BODY_EXCERPT)}... (${text.length} chars)` : text;
}
