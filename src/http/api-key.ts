// The API key check, one for HTTP routes and the activation WebSocket. Both sides are hashed before
// the constant-time comparison, so neither the key's content nor its length leaks through timing.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { ApiError } from './errors.js';

export function apiKeyMatches(given: string | null | undefined, expected: string): boolean {
  if (given === null || given === undefined) return false;
  const digest = (key: string): Buffer => createHash('sha256').update(key, 'utf8').digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** The key from `Authorization: Bearer <key>`, if the header has that form. */
export function bearerToken(authorization: string | undefined): string | undefined {
  return /^Bearer (.+)$/i.exec(authorization ?? '')?.[1];
}

export function requireApiKey(apiKey: string | undefined): RequestHandler {
  return (req, _res, next) => {
    if (apiKey === undefined) return next();
    const given = bearerToken(req.get('authorization'));
    if (apiKeyMatches(given, apiKey)) return next();
    next(new ApiError('invalid_api_key', given !== undefined ? 'the API key is not valid' : 'missing API key: send Authorization: Bearer <key>'));
  };
}
