// One way to say what is wrong with a value zod refused: the first issue, its path written as
// `messages[0].content` (the form OpenAI's `param` uses), unknown keys named.
import type { z } from 'zod';

export interface DescribedIssue {
  /** `a.b[0].c`, or '' for the value itself. */
  path: string;
  message: string;
}

export function firstZodIssue(error: z.ZodError): DescribedIssue {
  return describeIssue(error.issues[0]!, []);
}

function describeIssue(issue: z.core.$ZodIssue, prefix: PropertyKey[]): DescribedIssue {
  const path = [...prefix, ...issue.path];
  if (issue.code === 'unrecognized_keys') {
    return { path: formatPath([...path, issue.keys[0]!]), message: `unknown field(s) ${issue.keys.join(', ')}` };
  }
  if (issue.code === 'invalid_union') {
    // A value of one alternative's shape that fails inside it: say what is wrong there, not "expected A or B".
    const inside = issue.errors.filter((branch) => branch.length > 0 && branch[0]!.path.length > 0);
    if (inside.length === 1) return describeIssue(inside[0]![0]!, path);
  }
  return { path: formatPath(path), message: issue.message };
}

/** "path: message", with "(root)" for the value itself. */
export function describeZodError(error: z.ZodError): string {
  const { path, message } = firstZodIssue(error);
  return `${path || '(root)'}: ${message}`;
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key)), '');
}
