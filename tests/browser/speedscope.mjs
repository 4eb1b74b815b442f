// Checks a pysample speedscope file against speedscope's own schema, then opens it in speedscope's
// viewer in headless Chromium the way a person would (the "Browse" file input) and reads it back:
// every thread's profile, a sample drawn where time order puts it, and each NAME in the sandwich
// table with the share of time the file gives it.
//
//   node tests/browser/speedscope.mjs FILE.speedscope.json NAME [NAME...]
//   node tests/browser/speedscope.mjs FILE.txt NAME [NAME...]     (collapsed/folded stacks)
//
// A NAME matches a frame named NAME or ending in ".NAME" (a method's qualified name). With
// SPEEDSCOPE_SCREENSHOT=path.png, a screenshot of the busiest thread's time-order view is saved.
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Ajv from 'ajv';
import { CheckFailed, check, launchChromium, main, openWatchedPage, passed } from './common.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const RELEASE = resolve(HERE, 'node_modules', 'speedscope', 'dist', 'release');
const ROW_HEIGHT = 20;  // pixels per frame row in speedscope's flame charts
const MIN_SAMPLE_WIDTH = 6;  // pixels, so that hovering its centre cannot land on a neighbour
const WEIGHT_TOLERANCE = 1e-9;

// Frames are named "function" in speedscope files and "function (file:line)" in folded stacks.
function matches(frameName, wanted) {
  const name = frameName.replace(/ \([^()]*\)$/, '');
  return name === wanted || name.endsWith('.' + wanted);
}

// Folded stacks ("a (f.py:1);b (f.py:2) 12" per line) as the model speedscope builds from them:
// one profile in file order, frames named by their whole text, weights in samples.
function readFolded(file) {
  const frames = [];
  const index = new Map();
  const samples = [];
  const weights = [];
  const lines = readFileSync(file, 'utf8').split('\n').filter((line) => line.length > 0);
  for (const line of lines) {
    const match = /^(.*) (\d+)$/.exec(line);
    check(match, `not a folded-stack line: ${JSON.stringify(line)}`);
    samples.push(match[1].split(';').map((name) => {
      if (!index.has(name)) {
        index.set(name, frames.length);
        frames.push({ name });
      }
      return index.get(name);
    }));
    weights.push(Number(match[2]));
  }
  check(samples.length > 0, `${file} has no stacks`);
  const total = weights.reduce((a, b) => a + b, 0);
  const name = basename(file);
  passed(`${samples.length} folded stacks, ${frames.length} distinct frames, ${total} samples`);
  return { name, shared: { frames },
    profiles: [{ type: 'sampled', name, unit: 'none', startValue: 0, endValue: total, samples, weights }] };
}

function checkSchema(data) {
  const schema = JSON.parse(readFileSync(resolve(RELEASE, 'file-format-schema.json'), 'utf8'));
  // The schema carries titles next to $refs, which strict mode rejects; the rules themselves apply.
  const validate = new Ajv({ strict: false, allErrors: true }).compile(schema);
  check(validate(data), 'the file does not follow speedscope\'s schema:\n' +
    (validate.errors || []).map((e) => `  ${e.instancePath || '/'} ${e.message}`).join('\n'));
  passed(`follows speedscope's file-format schema (${data.shared.frames.length} frames, ` +
    `${data.profiles.length} profiles)`);
}

// What the schema cannot say: samples and weights line up, indices point at frames, time adds up.
function checkConsistency(data) {
  check(data.profiles.length > 0, 'the file has no profiles');
  check(data.activeProfileIndex === undefined || data.profiles[data.activeProfileIndex],
    `activeProfileIndex ${data.activeProfileIndex} names no profile`);
  const frameCount = data.shared.frames.length;
  for (const profile of data.profiles) {
    check(profile.type === 'sampled', `profile "${profile.name}" is ${profile.type}, expected sampled`);
    check(profile.samples.length === profile.weights.length,
      `profile "${profile.name}" has ${profile.samples.length} samples but ${profile.weights.length} weights`);
    check(profile.samples.length > 0, `profile "${profile.name}" has no samples`);
    for (const stack of profile.samples) {
      check(stack.length > 0 && stack.every((i) => Number.isInteger(i) && i >= 0 && i < frameCount),
        `profile "${profile.name}" has a sample [${stack}] outside the ${frameCount} frames`);
    }
    check(profile.weights.every((w) => w > 0), `profile "${profile.name}" has a weight that is not positive`);
    const total = totalWeight(profile);
    const span = profile.endValue - profile.startValue;
    check(Math.abs(span - total) <= WEIGHT_TOLERANCE * Math.max(1, total),
      `profile "${profile.name}" spans ${span} ${profile.unit} but its weights add up to ${total}`);
  }
  passed(`every profile's samples point at frames and its weights add up to its span ` +
    `(${data.profiles.map((p) => `"${p.name}": ${p.samples.length} samples`).join(', ')})`);
}

function checkNamesInFrames(data, names) {
  for (const name of names) {
    const found = data.shared.frames.filter((f) => matches(f.name, name));
    check(found.length > 0, `no frame is named "${name}"; frames: ${JSON.stringify(
      [...new Set(data.shared.frames.map((f) => f.name))])}`);
    passed(`"${name}" is a frame (${found.map((f) => `${f.name} ${f.file}:${f.line ?? '?'}`).join(', ')})`);
  }
}

function totalWeight(profile) {
  return profile.weights.reduce((sum, w) => sum + w, 0);
}

// speedscope's total for a frame counts each sample once, however often the frame recurs in it.
function frameTotals(profile) {
  const totals = new Map();
  profile.samples.forEach((stack, i) => {
    for (const frame of new Set(stack)) totals.set(frame, (totals.get(frame) || 0) + profile.weights[i]);
  });
  return totals;
}

// The same rounding speedscope uses for the percentages in its tables.
function formatPercent(percent) {
  if (percent === 100) return '100%';
  if (percent > 99) return '>99%';
  if (percent < 0.01) return '<0.01%';
  if (percent < 1) return `${percent.toFixed(2)}%`;
  if (percent < 10) return `${percent.toFixed(1)}%`;
  return `${percent.toFixed(0)}%`;
}

async function bodyText(page) {
  return page.evaluate(() => document.body.innerText);
}

async function loadInViewer(page, file, data) {
  await page.goto(pathToFileURL(resolve(RELEASE, 'index.html')).href, { waitUntil: 'load' });
  await page.setInputFiles('#file', resolve(file));
  await page.waitForFunction(() => document.title !== 'speedscope' ||
    document.body.innerText.includes('Something went wrong'));
  const text = await bodyText(page);
  check(!text.includes('Something went wrong'), `speedscope could not import the file: "${text}"`);
  const title = await page.title();
  check(title === `${data.name} - speedscope`, `the page title is "${title}", expected "${data.name} - speedscope"`);
  passed(`speedscope imported the file: title "${title}"`);
}

// speedscope's keys ("n" next profile, "1" time order, "3" sandwich) work once the view has settled
// after a change: press until the page shows the result, a second apart.
async function pressUntil(page, key, shown, what) {
  for (let attempt = 0; attempt < 20; ++attempt) {
    await page.keyboard.press(key);
    try {
      await page.waitForFunction(shown.fn, shown.arg, { timeout: 1000 });
      return;
    } catch {
      // not there yet
    }
    if (await page.evaluate(shown.fn, shown.arg)) return;
  }
  throw new CheckFailed(`pressing "${key}" does not show ${what}`);
}

const showsText = (text) => ({ fn: (t) => document.body.innerText.includes(t), arg: text });
const lacksText = (text) => ({ fn: (t) => !document.body.innerText.includes(t), arg: text });

async function showProfile(page, data, index) {
  const profile = data.profiles[index];
  // The toolbar numbers the profiles only when there are several.
  const count = data.profiles.length;
  const label = count > 1 ? `${profile.name} (${index + 1}/${count})` : profile.name;
  if (index > 0) await pressUntil(page, 'n', showsText(label), `profile "${label}" in the toolbar`);
  await showTimeOrder(page);
  check((await bodyText(page)).includes(label), `the toolbar does not show "${label}"`);
}

async function showTimeOrder(page) {
  await pressUntil(page, '1', lacksText('Symbol Name'), 'the time-order view');
}

// The text the flame chart's hover tooltip adds to the page, "" when nothing is under the mouse.
async function tooltipAt(page, baseline, x, y) {
  await page.mouse.move(x, y);
  const text = await bodyText(page);
  return text.startsWith(baseline) ? text.slice(baseline.length).trim() : text;
}

// Tooltips read "<weight> (<percent>) <name>" then "<file>:<line>".
function tooltipName(tooltip) {
  const first = tooltip.split('\n')[0];
  return first.slice(first.indexOf(') ') + 2);
}

// Where a sample is drawn in time order: samples are laid end to end across the full width. The
// first one at least MIN_SAMPLE_WIDTH pixels wide is taken (else the widest), hovered at its centre.
function sampleToHover(profile, width) {
  const total = totalWeight(profile);
  let start = 0;
  let best = null;
  profile.weights.forEach((weight, index) => {
    const pixels = (weight / total) * width;
    if (best === null || (best.pixels < MIN_SAMPLE_WIDTH && pixels > best.pixels)) {
      best = { index, pixels, x: ((start + weight / 2) / total) * width };
    }
    start += weight;
  });
  return best;
}

// A name as the page renders it: runs of white space (a tab or newline in a name) show as one space.
function rendered(name) {
  return name.replace(/[ \t\n\r]+/g, ' ');
}

// Hovering down the column of one sample in the time-order chart must name its frames, root first,
// and nothing below its leaf.
async function checkSampleDrawn(page, data, profile) {
  const sample = sampleToHover(profile, page.viewportSize().width);
  const stack = profile.samples[sample.index].map((i) => rendered(data.shared.frames[i].name));
  const where = `x=${sample.x.toFixed(1)} (sample ${sample.index + 1} of ${profile.samples.length})`;
  await page.mouse.move(0, 0);
  const baseline = (await bodyText(page)).trimEnd();
  let top = null;
  for (let y = 20; y < 400 && top === null; y += 2) {
    if (await tooltipAt(page, baseline, sample.x, y) !== '') top = y;
  }
  check(top !== null, `profile "${profile.name}": no frame drawn at ${where} of the time-order chart`);
  const shown = [];
  for (let depth = 0; depth <= stack.length; ++depth) {
    const tooltip = await tooltipAt(page, baseline, sample.x, top + ROW_HEIGHT / 2 + depth * ROW_HEIGHT);
    if (tooltip === '') break;
    shown.push(tooltipName(tooltip));
  }
  check(JSON.stringify(shown) === JSON.stringify(stack),
    `profile "${profile.name}": the time-order chart shows ${JSON.stringify(shown)} at ${where}, ` +
    `the file has ${JSON.stringify(stack)} there`);
  passed(`"${profile.name}": the time-order chart shows ${stack.join(' > ')} at ${where}`);
  await page.mouse.move(0, 0);
}

// A view that has just been switched to listens for Ctrl-F only once it has settled: ask again until
// the search box shows.
async function openSearch(page) {
  for (let attempt = 0; attempt < 20; ++attempt) {
    await page.keyboard.press('Control+f');
    try {
      await page.locator('input:visible').waitFor({ timeout: 500 });
      return;
    } catch {
      // not shown yet
    }
  }
  throw new CheckFailed('Ctrl-F does not open speedscope\'s search box');
}

function describeRow(name, file) {
  return file ? `${name} ${file}` : name;
}

// Searching the sandwich table for a name must list each frame of that name with the share of the
// thread's time the file gives it.
async function checkSandwichRows(page, data, profile, name) {
  const totals = frameTotals(profile);
  const all = totalWeight(profile);
  const expected = [...totals].filter(([i]) => matches(data.shared.frames[i].name, name))
    .map(([i, total]) => {
      const frame = data.shared.frames[i];
      return `${describeRow(frame.name, frame.file)} ${formatPercent(100 * total / all)}`;
    }).sort();
  await pressUntil(page, '3', showsText('Symbol Name'), 'the sandwich table');
  await openSearch(page);
  // Filled rather than typed: keys sent before the box has focus would reach speedscope's shortcuts.
  await page.locator('input:visible').fill(name);
  // Each row: total, self, then the symbol cell, whose title is the file when the frame has one.
  const readRows = () => page.$$eval('tr', (rows) => rows.filter((row) => row.querySelectorAll('td').length >= 3)
    .map((row) => {
      const cells = row.querySelectorAll('td');
      const symbol = cells[cells.length - 1];
      const percent = (/\(([^)]*)\)/.exec(cells[0].textContent) || [])[1];
      return { name: symbol.textContent, file: symbol.title, percent };
    }));
  let shown = [];
  for (let attempt = 0; attempt < 50; ++attempt) {
    shown = (await readRows()).filter((row) => matches(row.name, name))
      .map((row) => `${describeRow(row.name, row.file)} ${row.percent}`).sort();
    if (JSON.stringify(shown) === JSON.stringify(expected)) break;
    await page.waitForTimeout(100);
  }
  check(JSON.stringify(shown) === JSON.stringify(expected),
    `profile "${profile.name}": the sandwich table shows ${JSON.stringify(shown)} for "${name}", ` +
    `expected ${JSON.stringify(expected)}; search box holds ${JSON.stringify(await searchText(page))}`);
  passed(`"${profile.name}": sandwich search "${name}" lists ${shown.join('; ')}`);
  await page.keyboard.press('Escape');
  await showTimeOrder(page);
}

async function searchText(page) {
  return page.evaluate(() => document.activeElement && document.activeElement.value);
}

function usesName(data, profile, name) {
  return profile.samples.some((stack) => stack.some((i) => matches(data.shared.frames[i].name, name)));
}

async function run(file, names) {
  check(existsSync(file), `${file} does not exist`);
  let data;
  if (file.endsWith('.json')) {
    try {
      data = JSON.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new CheckFailed(`${file} is not JSON: ${error.message}`);
    }
    checkSchema(data);
  } else {
    data = readFolded(file);
  }
  checkConsistency(data);
  checkNamesInFrames(data, names);

  const browser = await launchChromium();
  const problems = [];
  try {
    const page = await openWatchedPage(browser, problems);
    page.on('dialog', (dialog) => {
      problems.push(`dialog: ${dialog.message()}`);
      dialog.dismiss().catch(() => {});
    });
    await loadInViewer(page, file, data);
    check(problems.length === 0, problems.join('\n'));

    const busiest = data.profiles.reduce((best, p, i) =>
      (totalWeight(p) > totalWeight(data.profiles[best]) ? i : best), 0);
    const screenshot = process.env.SPEEDSCOPE_SCREENSHOT;
    const seen = new Set();
    for (let index = 0; index < data.profiles.length; ++index) {
      const profile = data.profiles[index];
      await showProfile(page, data, index);
      await checkSampleDrawn(page, data, profile);
      for (const name of names.filter((n) => usesName(data, profile, n))) {
        await checkSandwichRows(page, data, profile, name);
        seen.add(name);
      }
      if (screenshot && index === busiest) {
        await page.screenshot({ path: screenshot });
        passed(`screenshot of "${profile.name}" saved to ${screenshot}`);
      }
    }
    const missing = names.filter((n) => !seen.has(n));
    check(missing.length === 0, `no profile's samples use ${JSON.stringify(missing)}`);
    passed(`every name was found in the viewer: ${names.join(', ')}`);
    check(problems.length === 0, problems.join('\n'));
    passed('no page errors, console errors, dialogs or network requests');
  } finally {
    await browser.close();
  }
}

await main('node speedscope.mjs FILE.speedscope.json|FILE.txt (folded stacks) NAME [NAME...]', run);
