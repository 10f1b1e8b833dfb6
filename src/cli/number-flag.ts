// Numeric command-line flags, checked once with a message naming the flag.

export function numberFlag(value: string | undefined, flag: string, fallback: number, kind: 'number' | 'integer' = 'number'): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || (kind === 'integer' && !Number.isInteger(n))) {
    throw new Error(`${flag} ${value}: expected a non-negative ${kind}`);
  }
  return n;
}
