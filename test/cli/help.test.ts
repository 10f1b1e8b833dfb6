// The CLI as a newcomer meets it: `swserve --help`, `--version`, and `--help` on every subcommand
// (each flag with a sentence), a clear exit status 2 for a command line that does not parse.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const VERSION = (JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const SUBCOMMANDS = ['serve', 'generate', 'download', 'detect', 'eval'];

function swserve(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('swserve CLI help', () => {
  it('lists every subcommand on --help and with no arguments', () => {
    for (const args of [['--help'], ['-h'], []]) {
      const r = swserve(...args);
      assert.equal(r.status, 0, r.stderr);
      for (const name of SUBCOMMANDS) assert.match(r.stdout, new RegExp(`^  ${name} +\\S`, 'm'));
    }
  });

  it('prints the package version', () => {
    const r = swserve('--version');
    assert.equal(r.status, 0);
    assert.equal(r.stdout.trim(), `swserve ${VERSION}`);
  });

  for (const name of SUBCOMMANDS) {
    it(`${name} --help describes every flag and exits 0`, () => {
      const r = swserve(name, '--help');
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^Usage: swserve ${name} `, 'm'));
      const flagLines = r.stdout.split('\n').filter((line) => /^ {2}(-\w, )?--[\w-]+/.test(line));
      assert.ok(flagLines.length >= 3, r.stdout);
      // Each flag line carries a sentence after the flag and its value placeholder.
      for (const line of flagLines) assert.match(line, /^ {2}\S.*\S {2,}[A-Z].*\.( \(default: .+\))?$/, line);
      assert.deepEqual(swserve('help', name).stdout, r.stdout);
    });
  }

  it('shows defaults from config/server.json on serve --help', () => {
    const config = JSON.parse(fs.readFileSync(new URL('../../../config/server.json', import.meta.url), 'utf8')) as { port: number; limits: { maxNumSeqs: number } };
    const r = swserve('serve', '--help');
    assert.match(r.stdout, new RegExp(`--port N .*\\(default: ${config.port}, from config/server.json\\)`));
    assert.match(r.stdout, new RegExp(`--max-num-seqs N .*\\(default: ${config.limits.maxNumSeqs}, from config/server.json\\)`));
  });

  it('refuses unknown options and commands with exit status 2 and a pointer to --help', () => {
    const option = swserve('generate', '--nope');
    assert.equal(option.status, 2);
    assert.match(option.stderr, /Unknown option '--nope'.*swserve generate --help/);
    const command = swserve('bogus');
    assert.equal(command.status, 2);
    assert.match(command.stderr, /unknown command 'bogus'/);
    const missing = swserve('eval');
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /--model is required/);
  });
});
