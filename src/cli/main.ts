#!/usr/bin/env node
// The `swserve` command: one subcommand per job, each with its own --help.
import fs from 'node:fs';
import { commandHelp, UsageError } from './command-line.js';
import { DETECT_COMMAND, runDetect } from './detect-command.js';
import { DOWNLOAD_COMMAND, runDownload } from './download-command.js';
import { EVAL_COMMAND, runEval } from './eval-command.js';
import { GENERATE_COMMAND, runGenerate } from './generate-command.js';
import { runServe, serveCommand, SERVE_SUMMARY } from './serve-command.js';

interface Subcommand {
  summary: string;
  help: () => string;
  run: (argv: string[]) => Promise<void>;
}

const COMMANDS: Record<string, Subcommand> = {
  serve: { summary: SERVE_SUMMARY, help: () => commandHelp(serveCommand()), run: runServe },
  generate: { summary: GENERATE_COMMAND.summary, help: () => commandHelp(GENERATE_COMMAND), run: runGenerate },
  download: { summary: DOWNLOAD_COMMAND.summary, help: () => commandHelp(DOWNLOAD_COMMAND), run: runDownload },
  detect: { summary: DETECT_COMMAND.summary, help: () => commandHelp(DETECT_COMMAND), run: runDetect },
  eval: { summary: EVAL_COMMAND.summary, help: () => commandHelp(EVAL_COMMAND), run: runEval },
};

// From dist/src/cli/ to the package's own package.json.
const PACKAGE_JSON = new URL('../../../package.json', import.meta.url);

function overview(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  return [
    'swserve: an OpenAI-compatible LLM server that can switch a model\'s super weights per request',
    '',
    'Usage: swserve <command> [options]    (swserve <command> --help for its options)',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'Options:',
    '  -h, --help     Show this help and exit.',
    '  -v, --version  Print the version and exit.',
    '',
  ].join('\n');
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    process.stdout.write(overview());
    return;
  }
  if (name === '--version' || name === '-v') {
    const { version } = JSON.parse(fs.readFileSync(PACKAGE_JSON, 'utf8')) as { version: string };
    process.stdout.write(`swserve ${version}\n`);
    return;
  }
  if (name === 'help') {
    const topic = rest[0] === undefined ? undefined : COMMANDS[rest[0]];
    if (rest[0] !== undefined && !topic) throw new UsageError(`unknown command '${rest[0]}'; see \`swserve --help\``);
    process.stdout.write(topic ? topic.help() : overview());
    return;
  }
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`unknown command '${name}'; the commands are ${Object.keys(COMMANDS).join(', ')} (see \`swserve --help\`)`);
  await command.run(rest);
}

main(process.argv.slice(2)).catch((err: Error) => {
  process.stderr.write(`swserve: ${err.message}\n`);
  process.exitCode = err instanceof UsageError ? 2 : 1;
});
