// What every viewer check shares: headless Chromium, pass/fail reporting and the command-line entry.
import { chromium } from 'playwright-core';

// Without the networking switches Chromium keeps trying to reach its own services.
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--allow-file-access-from-files'];

export class CheckFailed extends Error {}

export function check(condition, message) {
  if (!condition) throw new CheckFailed(message);
}

export function passed(message) {
  console.log('ok   ' + message);
}

export function launchChromium() {
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: CHROMIUM_ARGS });
}

// Runs `run(file, names)` for `node script.mjs FILE NAME [NAME...]`, exiting 0 on PASS and 1 on FAIL.
export async function main(usage, run) {
  const [file, ...names] = process.argv.slice(2);
  if (!file || names.length === 0) {
    console.error(`usage: ${usage}`);
    process.exit(2);
  }
  try {
    await run(file, names);
    console.log(`PASS ${file}`);
  } catch (error) {
    console.error(`FAIL ${file}: ${error instanceof CheckFailed ? error.message : error.stack}`);
    process.exit(1);
  }
}

// A page that records what a viewer must never do: throw, log errors, or reach the network.
export async function openWatchedPage(browser, problems) {
  const page = await browser.newPage({ viewport: { width: 1240, height: 800 } });
  page.setDefaultTimeout(15000);
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  page.on('request', (request) => {
    const url = request.url();
    if (!url.startsWith('file:') && !url.startsWith('data:')) problems.push(`network request: ${url}`);
  });
  return page;
}

// Saves what the page shows, the whole SVG drawing (fullPage does not work for SVG documents: the
// viewport is sized to the drawing instead).
export async function saveScreenshot(page, path) {
  const size = await page.evaluate(() => ({
    width: Math.ceil(document.documentElement.width.baseVal.value),
    height: Math.ceil(document.documentElement.height.baseVal.value),
  }));
  await page.setViewportSize(size);
  await page.screenshot({ path });
  passed(`screenshot saved to ${path}`);
}
