// One way to say what is wrong with a value zod refused: the first issue, its path written as
// `messages[0].content` (the form OpenAI's `param` uses), unknown keys named.
import type { z } from 'zod';

export interface DescribedIssue {
  /** `a.b[0].c`, or '' for the value itself. */
  path: string;
  message: string;
}

export function firstZodIssue(error: z.ZodError): DescribedIssue {
  const issue = error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    return { path: formatPath([...issue.path, issue.keys[0]!]), message: `unknown field(s) ${issue.keys.join(', ')}` };
  }
  return { path: formatPath(issue.path), message: issue.message };
}

/** "path: message", with "(root)" for the value itself. */
export function describeZodError(error: z.ZodError): string {
  const { path, message } = firstZodIssue(error);
  return `${path || '(root)'}: ${message}`;
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key)), '');
}
