// Bearer API key, when one is configured, compared in constant time.
import { timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { ApiError } from './errors.js';

export function requireApiKey(apiKey: string | undefined): RequestHandler {
  const expected = apiKey === undefined ? undefined : Buffer.from(apiKey);
  return (req, _res, next) => {
    if (!expected) return next();
    const match = /^Bearer (.+)$/i.exec(req.get('authorization') ?? '');
    const given = Buffer.from(match?.[1] ?? '');
    if (given.length === expected.length && timingSafeEqual(given, expected)) return next();
    next(new ApiError('invalid_api_key', match ? 'the API key is not valid' : 'missing API key: send Authorization: Bearer <key>'));
  };
}
