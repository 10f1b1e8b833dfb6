// The live page in headless Chromium (Debian's `chromium`, driven by playwright-core): it connects to
// the activation stream, draws the per-layer spikes and super activations after original and ablated
// requests, and a screenshot is saved to dist/test-artifacts/live-page.png.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { skipUnlessInstalled } from '../helpers/required-tool.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { complete } from './activation-client.js';

const CHROMIUM_CANDIDATES = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'];
const SCREENSHOT = fileURLToPath(new URL('../../test-artifacts/live-page.png', import.meta.url));
const PAGE_TIMEOUT_MS = 20_000;
const VIEWPORT = { width: 1280, height: 820 };

const executablePath = CHROMIUM_CANDIDATES.find((p): p is string => p !== undefined && fs.existsSync(p));
let server: TestServer;
let browser: Browser | undefined;

before(async () => {
  if (!executablePath && !process.env.CI) return;
  if (!executablePath) throw new Error('no Chromium (Debian package chromium), and CI must run the live-page test');
  server = await startTestServer();
  browser = await chromium.launch({ executablePath, headless: true });
});
after(async () => {
  await browser?.close();
  await server?.close();
});

it('connects and draws the latest requests, original and ablated side by side', { skip: skipUnlessInstalled(executablePath !== undefined, 'Chromium (Debian package chromium)') }, async () => {
  const page = await browser!.newPage({ viewport: VIEWPORT });
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(`${server.url}/`);
  await page.waitForSelector('#status[data-state="connected"]', { timeout: PAGE_TIMEOUT_MS });
  for (const super_weights of ['on', 'off']) {
    await complete(server.url, { model: server.modelId, prompt: 'Summer is hot. Winter is', max_tokens: 4, temperature: 0, super_weights });
  }
  await page.waitForSelector('body[data-requests="2"]', { timeout: PAGE_TIMEOUT_MS });
  await page.waitForFunction(() => [...document.querySelectorAll('#requests td')].filter((td) => td.textContent === 'length').length === 2, undefined, { timeout: PAGE_TIMEOUT_MS });
  // Drawn, not blank: count painted pixels on both canvases.
  const painted = await page.evaluate(() =>
    ['layers', 'supers'].map((id) => {
      const canvas = document.getElementById(id) as HTMLCanvasElement;
      const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
      let count = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) count++;
      return count;
    }),
  );
  assert.ok(painted.every((n) => n > 500), `painted pixels per canvas: ${painted}`);
  const modes = await page.$$eval('#requests tr td:nth-child(3)', (cells) => cells.map((c) => c.textContent));
  assert.deepEqual(modes, ['ablated', 'original']);
  fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  assert.deepEqual(errors, []);
});
