// Opens a pysample flamegraph SVG in headless Chromium and uses it the way a person would: reads the
// frames, hovers, clicks to zoom, resets, searches with Ctrl-F and with the button.
//
//   node tests/browser/flamegraph.mjs FILE.svg NAME [NAME...]
//
// Each NAME must show in the text of a drawn frame; the first one is zoomed into and searched for.
// With FLAMEGRAPH_SCREENSHOT=path.png, a screenshot of the final state (a search active) is saved.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CheckFailed, check, launchChromium, main, openWatchedPage, passed, saveScreenshot } from './common.mjs';

const TOLERANCE = 0.02;  // pixels; positions are written with two decimals

function checkWellFormedXml(file) {
  const result = spawnSync('xmllint', ['--noout', file], { encoding: 'utf8' });
  if (result.error && result.error.code === 'ENOENT') {
    throw new CheckFailed('xmllint is not installed (Debian package libxml2-utils)');
  }
  check(result.status === 0 && result.stderr === '', `xmllint rejects ${file}:\n${result.stderr}`);
  passed('xmllint --noout accepts the file');
}

// Every frame as the page currently shows it, root first.
function readFrames(page) {
  return page.$$eval('#frames > g', (groups) => groups.map((g, index) => {
    const rect = g.querySelector('rect');
    const [label, stats] = g.querySelector('title').textContent.split('\n');
    return {
      index, label, stats,
      text: g.querySelector('text').textContent,
      samples: parseInt(stats, 10),
      start: Number(g.getAttribute('data-o')),
      x: Number(rect.getAttribute('x')),
      width: Number(rect.getAttribute('width')),
      visible: getComputedStyle(g).display !== 'none' && rect.getBoundingClientRect().width > 0,
      highlighted: g.classList.contains('hl'),
      merged: g.classList.contains('m'),
      thread: g.classList.contains('t'),
      fill: getComputedStyle(rect).fill,
    };
  }));
}

function sameLayout(before, after) {
  return before.length === after.length && before.every((f, i) =>
    Math.abs(f.x - after[i].x) <= TOLERANCE && Math.abs(f.width - after[i].width) <= TOLERANCE &&
    f.visible === after[i].visible);
}

// The page ignores case unless the search has capitals, and matches a frame's label as shown in its
// box ("f (c.py:3)") unless the search has a "/", when it matches the whole path; the same rules here.
function searchMatcher(term) {
  const pattern = new RegExp(term, term === term.toLowerCase() ? 'i' : '');
  const withPath = term.includes('/');
  return (f) => pattern.test(withPath || f.thread ? f.label : f.label.replace(/\([^()]*\/([^()\/]*)\)$/, '($1)'));
}

// Samples covered by the union of the frames' sample ranges, so nested matches count once.
function coveredSamples(frames) {
  const ranges = frames.map((f) => [f.start, f.start + f.samples]).sort((a, b) => a[0] - b[0]);
  let covered = 0;
  let end = -Infinity;
  for (const [from, to] of ranges) {
    if (to <= end) continue;
    covered += to - Math.max(from, end);
    end = to;
  }
  return covered;
}

function frameGroup(page, index) {
  return page.locator('#frames > g').nth(index).locator('rect');
}

function checkStructure(frames) {
  check(frames.length > 1, `expected frames, found ${frames.length}`);
  const root = frames[0];
  check(root.label === 'all' && root.visible, 'the first frame is not a visible "all" root');
  passed(`${frames.length} frames drawn, root "all" ${root.width} px wide with ${root.samples} samples`);
}

function checkNamesShown(frames, names) {
  for (const name of names) {
    const shown = frames.filter((f) => f.visible && f.text.includes(name));
    const texts = [...new Set(frames.filter((f) => f.visible && f.text).map((f) => f.text))];
    check(shown.length > 0, `no drawn frame shows "${name}"; frames show ${JSON.stringify(texts.slice(0, 20))}` +
      (texts.length > 20 ? ` and ${texts.length - 20} more` : ''));
    passed(`"${name}" is shown in ${shown.length} frame(s), e.g. "${shown[0].text}"`);
  }
}

async function checkHover(page, frames, name) {
  const frame = frames.find((f) => f.visible && f.text.includes(name));
  await frameGroup(page, frame.index).hover();
  const details = await page.textContent('#details');
  check(details.includes(name) && /\d+ samples/.test(details) && /\d%/.test(details),
    `hovering "${frame.label}" shows "${details}", expected its name, samples and percent`);
  check(/\d+ samples, [\d.]+%/.test(frame.stats), `tooltip of "${frame.label}" lacks samples: "${frame.stats}"`);
  passed(`hover shows "${details}"`);
  await page.mouse.move(1, 1);
}

// A drawn frame below the full width, preferring one that shows `name`.
function zoomTarget(frames, name) {
  const candidates = frames.filter((f) => f.index > 0 && f.visible && !f.merged &&
    f.width < frames[0].width - 1 && f.width > 4);
  check(candidates.length > 0, 'no frame narrower than the root to zoom into');
  return candidates.find((f) => f.text.includes(name)) || candidates[0];
}

async function checkZoom(page, initial, name) {
  const target = zoomTarget(initial, name);
  await frameGroup(page, target.index).click();
  const zoomed = await readFrames(page);
  const root = initial[0];
  const after = zoomed[target.index];
  check(Math.abs(after.width - root.width) <= TOLERANCE && Math.abs(after.x - root.x) <= TOLERANCE,
    `after clicking "${target.label}" it is ${after.width} px wide at x=${after.x}, expected the full ` +
    `${root.width} px at x=${root.x}`);
  const changed = zoomed.filter((f, i) => i !== target.index &&
    (Math.abs(f.width - initial[i].width) > TOLERANCE || f.visible !== initial[i].visible));
  check(changed.length > 0, 'zooming changed no other frame');
  const hidden = zoomed.filter((f, i) => initial[i].visible && !f.visible).length;
  check(zoomed[0].visible, 'the root disappeared when zooming; ancestors must stay visible');
  check(await page.locator('#zoom.off').count() === 0, 'the "Reset zoom" control is not enabled after a zoom');
  passed(`clicking "${target.label}" (${target.width} px) zoomed it to ${after.width} px; ` +
    `${changed.length} other frames changed, ${hidden} hidden`);
  return target;
}

async function checkResets(page, initial, target) {
  await page.click('#zoom');
  check(sameLayout(initial, await readFrames(page)), '"Reset zoom" did not restore every frame');
  passed('"Reset zoom" restores every frame\'s position, width and visibility');

  await frameGroup(page, target.index).click();
  await frameGroup(page, 0).click();
  check(sameLayout(initial, await readFrames(page)), 'clicking the root did not restore every frame');
  passed('clicking the root after a zoom restores every frame');
}

async function checkSearchResult(page, initial, term, how) {
  await page.waitForFunction(() => document.getElementById('matched').textContent !== '');
  const frames = await readFrames(page);
  const matches = searchMatcher(term);
  const expected = frames.filter((f) => f.index > 0 && !f.merged && matches(f));
  const highlighted = frames.filter((f) => f.highlighted);
  check(highlighted.length > 0, `searching "${term}" highlighted nothing`);
  check(highlighted.length === expected.length && highlighted.every(matches),
    `searching "${term}" highlighted ${highlighted.map((f) => f.label)}, expected ${expected.map((f) => f.label)}`);
  for (const f of highlighted) {
    check(f.fill !== initial[f.index].fill, `highlighted frame "${f.label}" kept its colour ${f.fill}`);
  }
  const matched = await page.textContent('#matched');
  const shown = /([\d.]+)%/.exec(matched);
  check(shown, `no percentage shown after searching "${term}": "${matched}"`);
  const want = 100 * coveredSamples(highlighted) / frames[0].samples;
  check(Math.abs(Number(shown[1]) - want) <= 0.01,
    `searching "${term}" shows ${shown[1]}%, the matched frames cover ${want.toFixed(2)}% of samples`);
  passed(`search "${term}" via ${how}: ${highlighted.length} frame(s) highlighted in ${highlighted[0].fill}, ` +
    `"${matched}"`);
}

async function searchWith(page, term, trigger) {
  const answered = new Promise((resolveDialog, reject) => {
    page.once('dialog', (dialog) => {
      if (dialog.type() !== 'prompt') reject(new CheckFailed(`expected a prompt, got a ${dialog.type()}`));
      dialog.accept(term).then(resolveDialog, reject);
    });
  });
  await trigger();
  await answered;
}

async function checkSearch(page, initial, names) {
  await searchWith(page, names[0], () => page.keyboard.press('Control+f'));
  await checkSearchResult(page, initial, names[0], 'Ctrl-F');

  await page.click('#clear');
  const cleared = await readFrames(page);
  check(cleared.every((f) => !f.highlighted), '"Clear search" left frames highlighted');
  check(await page.textContent('#matched') === '', '"Clear search" left the percentage shown');
  passed('"Clear search" removes the highlight and the percentage');

  const last = names[names.length - 1];
  await searchWith(page, last, () => page.click('#search'));
  await checkSearchResult(page, initial, last, 'the Search button');
}

async function run(file, names) {
  check(existsSync(file), `${file} does not exist`);
  checkWellFormedXml(file);
  const browser = await launchChromium();
  const problems = [];
  try {
    const page = await openWatchedPage(browser, problems);
    await page.goto(pathToFileURL(resolve(file)).href, { waitUntil: 'load' });

    const initial = await readFrames(page);
    checkStructure(initial);
    checkNamesShown(initial, names);
    await checkHover(page, initial, names[0]);
    const target = await checkZoom(page, initial, names[0]);
    await checkResets(page, initial, target);
    await checkSearch(page, initial, names);

    const screenshot = process.env.FLAMEGRAPH_SCREENSHOT;
    if (screenshot) await saveScreenshot(page, screenshot);
    check(problems.length === 0, problems.join('\n'));
    passed('no page errors, console errors or network requests');
  } finally {
    await browser.close();
  }
}

await main('node flamegraph.mjs FILE.svg NAME [NAME...]', run);
