// A bound on how deeply a JSON body nests. OpenAI bodies nest a handful of levels (messages, content
// parts, a schema in response_format); everything that reads a body recursively (zod, JSON.stringify
// in an error message, a chat template) would overflow the stack on one nested 100,000 deep, which
// is a 1 MB body. So bodies are measured once, without recursion, and refused past the bound.
import type { RequestHandler } from 'express';
import { ApiError } from './errors.js';

// Far above any real request (a JSON schema in response_format rarely passes 20), far below where
// a recursive reader runs out of stack (thousands).
export const MAX_JSON_DEPTH = 64;

/** The nesting depth of a parsed JSON value, up to `limit + 1` (it stops looking past the limit). */
export function jsonDepth(value: unknown, limit: number): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    deepest = Math.max(deepest, depth);
    if (deepest > limit) return deepest;
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
  }
  return deepest;
}

/** Refuses a parsed body nested deeper than MAX_JSON_DEPTH. */
export const refuseDeepJson: RequestHandler = (req, _res, next) => {
  next(jsonDepth(req.body, MAX_JSON_DEPTH) > MAX_JSON_DEPTH ? new ApiError('invalid_json', `the request body nests deeper than ${MAX_JSON_DEPTH} levels`) : undefined);
};
