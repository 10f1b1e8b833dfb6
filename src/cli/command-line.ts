// Every subcommand declares its flags once, each with a sentence and its default; the same table
// parses argv (node:util parseArgs, strict) and prints `--help`, so help can not drift from parsing.
import { parseArgs } from 'node:util';

export interface FlagSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
  /** Applied when the flag is absent, and shown in help. */
  default?: string | boolean;
  /** The value's placeholder in help: N, FILE, TEXT. */
  value?: string;
  /** One sentence for --help. */
  description: string;
  /** The default when it is not a literal here (e.g. "16, from config/server.json"). */
  defaultNote?: string;
}

export type FlagTable = Record<string, FlagSpec>;

export interface CommandSpec<F extends FlagTable> {
  name: string;
  /** One line for `swserve --help`. */
  summary: string;
  /** Positional arguments in the usage line, e.g. "ORG/NAME"; absent when the command takes none. */
  positionals?: string;
  flags: F;
  /** Lines after the options (environment variables, examples). */
  notes?: string[];
}

/** A command line that does not parse: exit status 2, as getopt-style tools do. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** argv parsed against the command's flags, or undefined after printing help for `--help`/`-h`. */
export function parseCommandLine<F extends FlagTable>(spec: CommandSpec<F>, argv: string[], out: NodeJS.WritableStream = process.stdout) {
  if (argv.includes('--help') || argv.includes('-h')) {
    out.write(commandHelp(spec));
    return undefined;
  }
  try {
    return parseArgs({ args: argv, options: spec.flags, allowPositionals: spec.positionals !== undefined, strict: true });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}; see \`swserve ${spec.name} --help\``);
  }
}

export function commandHelp<F extends FlagTable>(spec: CommandSpec<F>): string {
  const rows = Object.entries(spec.flags).map(([name, flag]) => {
    const short = flag.short ? `-${flag.short}, ` : '';
    const value = flag.type === 'string' ? ` ${flag.value ?? 'VALUE'}` : '';
    const repeat = flag.multiple ? ' Repeatable.' : '';
    const fallback = flag.defaultNote ?? (flag.default === undefined || flag.default === false ? undefined : String(flag.default));
    return [`${short}--${name}${value}`, `${flag.description}${repeat}${fallback === undefined ? '' : ` (default: ${fallback})`}`] as const;
  });
  rows.push(['-h, --help', 'Show this help and exit.']);
  const width = Math.max(...rows.map(([left]) => left.length));
  const lines = [
    `swserve ${spec.name}: ${spec.summary}`,
    '',
    `Usage: swserve ${spec.name} [options]${spec.positionals ? ` ${spec.positionals}` : ''}`,
    '',
    'Options:',
    ...rows.map(([left, right]) => `  ${left.padEnd(width)}  ${right}`),
  ];
  if (spec.notes?.length) lines.push('', ...spec.notes);
  return `${lines.join('\n')}\n`;
}
