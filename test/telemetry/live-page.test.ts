// The live page in headless Chromium (Debian's `chromium`, driven by playwright-core): it connects to
// the activation stream, draws the per-layer spikes and super activations of requests under every
// switch plan with each one's plan and scale in the table, fits a phone's width, shows the server's
// reason when the stream refuses its query string, and has a favicon. Screenshots are saved to
// dist/test-artifacts/live-page.png and live-page-phone.png.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { skipUnlessInstalled } from '../helpers/required-tool.js';
import { startTestServer, type TestServer } from '../helpers/test-server.js';
import { complete } from './activation-client.js';

const CHROMIUM_CANDIDATES = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'];
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const PAGE_TIMEOUT_MS = 20_000;
const VIEWPORT = { width: 1280, height: 900 };
// An iPhone 13's CSS viewport.
const PHONE = { width: 390, height: 844 };
// One request per plan, oldest first; the table lists the newest first.
const PLANS: { super_weights: unknown; plan: string; scale: string }[] = [
  { super_weights: 'on', plan: 'original', scale: '1' },
  { super_weights: 'off', plan: 'zeroed', scale: '0' },
  { super_weights: { scale: 0, restore_activation: true }, plan: 'zeroed, SA restored', scale: '0' },
  { super_weights: { scale: 0.5 }, plan: 'scaled ×0.5', scale: '0.5' },
  { super_weights: { scale: 2 }, plan: 'scaled ×2', scale: '2' },
];

const executablePath = CHROMIUM_CANDIDATES.find((p): p is string => p !== undefined && fs.existsSync(p));
const skip = skipUnlessInstalled(executablePath !== undefined, 'Chromium (Debian package chromium)');
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

async function openPage(viewport: { width: number; height: number }, query = ''): Promise<{ page: Page; errors: string[] }> {
  const page = await browser!.newPage({ viewport });
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(`${server.url}/${query}`);
  return { page, errors };
}

async function screenshot(page: Page, name: string): Promise<void> {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, name), fullPage: true });
}

describe('live page', { skip }, () => {
  it('draws requests of every switch plan, each with its plan and scale, on a desktop and a phone', async () => {
    const { page, errors } = await openPage(VIEWPORT);
    const phone = await openPage(PHONE);
    for (const p of [page, phone.page]) await p.waitForSelector('#status[data-state="connected"]', { timeout: PAGE_TIMEOUT_MS });
    for (const { super_weights } of PLANS) await complete(server.url, { model: server.modelId, prompt: 'Summer is hot. Winter is', max_tokens: 4, temperature: 0, super_weights });
    for (const p of [page, phone.page]) {
      await p.waitForSelector(`body[data-requests="${PLANS.length}"]`, { timeout: PAGE_TIMEOUT_MS });
      await p.waitForFunction((n) => [...document.querySelectorAll('#requests td')].filter((td) => td.textContent === 'length').length === n, PLANS.length, { timeout: PAGE_TIMEOUT_MS });
    }
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
    const column = (n: number): Promise<(string | null)[]> => page.$$eval(`#requests tr td:nth-child(${n})`, (cells) => cells.map((c) => c.textContent));
    const newestFirst = [...PLANS].reverse();
    assert.deepEqual(await column(3), newestFirst.map((p) => p.plan));
    assert.deepEqual(await column(4), newestFirst.map((p) => p.scale));
    assert.deepEqual(await page.$$eval('#legend span', (items) => items.map((i) => i.textContent)), ['original', 'zeroed', 'zeroed, SA restored', 'scaled ×0.5', 'scaled ×2']);
    // A phone: nothing wider than the screen, every cell labelled.
    const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow} px wider than the phone`);
    assert.equal(await phone.page.$eval('#requests tr td:nth-child(3)', (td) => getComputedStyle(td, '::before').content), '"plan: "');
    await screenshot(page, 'live-page.png');
    await screenshot(phone.page, 'live-page-phone.png');
    assert.deepEqual([...errors, ...phone.errors], []);
  });

  it("shows the server's reason for a query string it refuses, and stops retrying", async () => {
    const { page, errors } = await openPage(VIEWPORT, '?layers=99');
    await page.waitForSelector('#status[data-state="refused"]', { timeout: PAGE_TIMEOUT_MS });
    assert.match((await page.textContent('#status')) ?? '', /refused the activation stream \(400\): bad subscription: layers: layer 99 does not exist/);
    assert.deepEqual(errors, []);
  });

  it('has a favicon', async () => {
    const { page } = await openPage(VIEWPORT);
    const size = await page.evaluate(async () => {
      const image = new Image();
      image.src = (document.querySelector('link[rel="icon"]') as HTMLLinkElement).href;
      await image.decode();
      return [image.naturalWidth, image.naturalHeight];
    });
    assert.ok(size.every((n) => n > 0), `favicon ${size}`);
  });
});
