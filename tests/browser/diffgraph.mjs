// Opens a differential flamegraph (pysample diff) in headless Chromium and reads what a person
// sees: each named frame's colour and tooltip, and the list of stacks gone since the base.
//
//   node tests/browser/diffgraph.mjs FILE.svg red:NAME=POINTS blue:NAME=POINTS white:NAME gone:NAME
//
// red and blue: the frame named NAME is drawn red (blue), and its tooltip gives a change of POINTS
// percentage points (within 0.01), which the caller computed from the two runs' own outputs.
// white: drawn white, its change within sampling noise. gone: NAME is in the list of stacks gone.
// With DIFFGRAPH_SCREENSHOT=path.png, a screenshot of the graph as it opens is saved.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CheckFailed, check, launchChromium, main, openWatchedPage, passed, saveScreenshot } from './common.mjs';

function readFrames(page) {
  return page.$$eval('#frames > g', (groups) => groups.map((g) => {
    const lines = g.querySelector('title').textContent.split('\n');
    return { label: lines[0], tooltip: lines.join(' / '), fill: getComputedStyle(g.querySelector('rect')).fill };
  }));
}

function channels(fill) {
  const match = /rgb\((\d+), (\d+), (\d+)\)/.exec(fill);
  check(match, `unreadable colour ${fill}`);
  return match.slice(1).map(Number);
}

function checkFrame(frames, kind, spec) {
  const [name, points] = spec.split('=');
  const frame = frames.find((f) => f.label.startsWith(name + ' ('));
  check(frame, `no frame ${name} drawn`);
  const [r, g, b] = channels(frame.fill);
  const change = /: ([+\u2212])([\d.]+) points/.exec(frame.tooltip);
  check(change, `${name}'s tooltip gives no change: "${frame.tooltip}"`);
  const shown = (change[1] === '+' ? 1 : -1) * Number(change[2]);
  if (kind === 'white') {
    check(r === 255 && g === 255 && b === 255, `${name} is ${frame.fill}, not white`);
    check(frame.tooltip.includes('within sampling noise') || Math.abs(shown) < 0.05,
      `${name} is white with a change of ${shown} points that its tooltip does not call noise`);
  } else {
    const red = kind === 'red';
    check(red ? r === 255 && g < 200 && b < 200 : b === 255 && r < 200 && g < 200,
      `${name} is ${frame.fill}, not ${kind}`);
    check(Math.abs(shown - Number(points)) <= 0.011, `${name}'s tooltip gives ${shown} points, expected ${points}`);
  }
  passed(`${name}: ${kind} (${frame.fill}), "${frame.tooltip}"`);
}

async function run(file, specs) {
  check(existsSync(file), `${file} does not exist`);
  const browser = await launchChromium();
  const problems = [];
  try {
    const page = await openWatchedPage(browser, problems);
    await page.goto(pathToFileURL(resolve(file)).href, { waitUntil: 'load' });
    const frames = await readFrames(page);
    const gone = await page.$$eval('#vanished text', (texts) => texts.map((t) => t.textContent));
    for (const spec of specs) {
      const [kind, rest] = spec.split(/:(.*)/s);
      if (kind === 'gone') {
        check(gone.some((line) => line.includes(rest)), `${rest} is not listed as gone: ${JSON.stringify(gone)}`);
        passed(`${rest} listed as gone since the base`);
      } else if (['red', 'blue', 'white'].includes(kind)) {
        checkFrame(frames, kind, rest);
      } else {
        throw new CheckFailed(`unknown check ${spec}`);
      }
    }
    const screenshot = process.env.DIFFGRAPH_SCREENSHOT;
    if (screenshot) await saveScreenshot(page, screenshot);
    check(problems.length === 0, problems.join('\n'));
    passed('no page errors, console errors or network requests');
  } finally {
    await browser.close();
  }
}

await main('node diffgraph.mjs FILE.svg red:NAME=POINTS|blue:NAME=POINTS|white:NAME|gone:NAME ...', run);
