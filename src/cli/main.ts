#!/usr/bin/env node
// The `swserve` command: one subcommand per job.
import { DETECT_USAGE, runDetect } from './detect-command.js';
import { DOWNLOAD_USAGE, runDownload } from './download-command.js';
import { EVAL_USAGE, runEval } from './eval-command.js';
import { GENERATE_USAGE, runGenerate } from './generate-command.js';
import { runServe, SERVE_USAGE } from './serve-command.js';

const COMMANDS: Record<string, { usage: string; run: (argv: string[]) => Promise<void> }> = {
  serve: { usage: SERVE_USAGE, run: runServe },
  generate: { usage: GENERATE_USAGE, run: runGenerate },
  download: { usage: DOWNLOAD_USAGE, run: runDownload },
  detect: { usage: DETECT_USAGE, run: runDetect },
  eval: { usage: EVAL_USAGE, run: runEval },
};

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  const command = name === undefined ? undefined : COMMANDS[name];
  if (!command) {
    process.stderr.write(`usage:\n${Object.values(COMMANDS).map((c) => `  ${c.usage}`).join('\n')}\n`);
    process.exitCode = name === undefined || name === '--help' ? 0 : 2;
    return;
  }
  await command.run(rest);
}

main(process.argv.slice(2)).catch((err: Error) => {
  process.stderr.write(`swserve: ${err.message}\n`);
  process.exitCode = 1;
});
