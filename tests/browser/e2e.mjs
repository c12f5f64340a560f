// e2e.mjs - ditd's web page in a real browser (Debian's Chromium driven by playwright-core),
// against a real ditd on 127.0.0.1 with the bundled model. Run through run.sh:
//
//   tests/browser/run.sh --ditd build/src/daemon/ditd --model models/fashion-dit SCENARIO
//        [--shots DIR]
//
// SCENARIO `page`: load the page, pick a class by name, generate, watch progress and previews
// arrive, check the final images' pixels and PNG metadata (and that they are the bytes the API
// gives for the same request), same again, vary seed, cancel a run, the queue panel, a phone-width
// screen. SCENARIO `apikey`: the same page against a ditd with API keys. Screenshots go to
// --shots (meson gives a directory in the build tree; tools/make-screenshot.sh copies them to
// docs/), else nowhere. SCENARIO `cors`: another web app, on an origin in cors_origins, calls the
// API from the browser the way the official OpenAI JavaScript client does (its X-Stainless-*
// headers), makes a job and reads its event stream; an origin not in the list is refused.
// Any console error, page error or request to another host fails the test.
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const STEP_DELAY_MS = '15';   // slow steps a little so progress, queue and cancel can be watched

function parseArgs(argv) {
  const a = { shots: null };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--ditd') a.ditd = argv[++i];
    else if (argv[i] === '--model') a.model = argv[++i];
    else if (argv[i] === '--shots') a.shots = argv[++i];
    else a.scenario = argv[i];
  }
  if (!a.ditd || !a.model || !['page', 'apikey', 'cors'].includes(a.scenario)) {
    console.error('usage: e2e.mjs --ditd PATH --model DIR [--shots DIR] page|apikey|cors');
    process.exit(2);
  }
  return a;
}

function check(cond, msg) {
  if (!cond) throw new Error('check failed: ' + msg);
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

async function until(what, fn, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await sleep(50);
  }
}

/* ---- ditd ------------------------------------------------------------------- */

async function startDitd(a, dir, extra) {
  const portFile = join(dir, 'port');
  const log = [];
  const proc = spawn(a.ditd, ['--listen', '127.0.0.1:0', '--port-file', portFile, '--model', a.model,
    '--access-log', 'yes', ...extra], {
    env: { ...process.env, DITD_TEST_STEP_DELAY_MS: STEP_DELAY_MS },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout.on('data', (d) => log.push(d.toString()));
  proc.stderr.on('data', (d) => log.push(d.toString()));
  let exited = null;
  proc.on('exit', (code) => { exited = code; });
  const port = await until('ditd to bind', () => {
    if (exited !== null) throw new Error('ditd exited with ' + exited + ':\n' + log.join(''));
    return existsSync(portFile) && Number(readFileSync(portFile, 'utf8').trim());
  }, 30000);
  const base = 'http://127.0.0.1:' + port;
  await until('ditd to be ready', async () => {
    try {
      return (await fetch(base + '/health/ready')).status === 200;
    } catch (e) {
      return false;
    }
  }, 60000);
  return { base, log, stop: () => proc.kill('SIGKILL') };
}

/* ---- PNG ------------------------------------------------------------------------ */

// {width, height, text: {key: value}} of a PNG's bytes.
function pngInfo(bytes) {
  const b = Buffer.from(bytes);
  check(b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), 'PNG signature');
  const out = { text: {} };
  for (let pos = 8; pos < b.length;) {
    const n = b.readUInt32BE(pos);
    const kind = b.toString('latin1', pos + 4, pos + 8);
    const body = b.subarray(pos + 8, pos + 8 + n);
    if (kind === 'IHDR') {
      out.width = body.readUInt32BE(0);
      out.height = body.readUInt32BE(4);
    } else if (kind === 'tEXt') {
      const z = body.indexOf(0);
      out.text[body.toString('latin1', 0, z)] = body.toString('latin1', z + 1);
    }
    pos += 12 + n;
  }
  return out;
}

/* ---- the browser ------------------------------------------------------------ */

async function openBrowser(dir) {
  const profile = join(dir, 'profile');      // a fresh --user-data-dir
  mkdirSync(profile);
  return chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1180, height: 860 },
  });
}

// Fail on what a user would see in the console, and on any request leaving 127.0.0.1.
function watch(page, base, problems) {
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push('console ' + m.type() + ': ' + m.text());
  });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(base + '/') && !u.startsWith('blob:' + base + '/')) problems.push('request to ' + u);
  });
}

// Record what the run section shows while a run goes on: the texts of #runinfo and every
// new src of a preview image.
async function recordRun(page) {
  await page.evaluate(() => {
    window.__seen = { info: [], previews: 0 };
    const info = document.getElementById('runinfo');
    new MutationObserver(() => window.__seen.info.push(info.textContent))
      .observe(info, { childList: true, characterData: true, subtree: true });
    new MutationObserver((ms) => {
      for (const m of ms) if (m.type === 'attributes' && m.attributeName === 'src') window.__seen.previews++;
    }).observe(document.getElementById('previews'), { attributes: true, subtree: true });
  });
}

async function pickClass(page, name) {
  const value = await page.$eval('#class', (sel, want) => {
    const o = [...sel.options].find((x) => x.textContent.startsWith(want + ' ('));
    return o ? o.value : null;
  }, name);
  check(value !== null, 'no class named ' + name + ' in the picker');
  await page.selectOption('#class', value);
  return Number(value);
}

async function fillForm(page, p) {
  await pickClass(page, p.className);
  await page.fill('#cfg', String(p.cfg));
  await page.fill('#steps', String(p.steps));
  await page.selectOption('#sampler', p.sampler);
  await page.fill('#n', String(p.n));
  await page.fill('#seed', p.seed);
}

async function runState(page, want, ms = 30000) {
  await page.waitForSelector('#run[data-state="' + want + '"]', { timeout: ms });
}

// The gallery's cards, newest first: seed, index, the pixel spread of the image as the browser
// rendered it, and the file its Download link saves (bytes and name).
async function galleryCards(page) {
  const cards = await page.$$eval('#gallery .card', async (cards) => Promise.all(cards.map(async (c) => {
    const img = c.querySelector('img');
    await img.decode();
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const g = canvas.getContext('2d');
    g.drawImage(img, 0, 0);
    const px = g.getImageData(0, 0, canvas.width, canvas.height).data;
    let lo = 255, hi = 0, sum = 0, sum2 = 0, n = 0;
    for (let i = 0; i < px.length; i += 4) {
      const v = px[i];
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
      sum += v;
      sum2 += v * v;
      n++;
    }
    return {
      seed: c.dataset.seed, index: Number(c.dataset.index), width: img.naturalWidth,
      shown: img.getBoundingClientRect().width, lo, hi, std: Math.sqrt(sum2 / n - (sum / n) ** 2),
    };
  })));
  const links = await page.$$('#gallery .card a.download');
  for (let i = 0; i < cards.length; i++) {
    const [download] = await Promise.all([page.waitForEvent('download'), links[i].click()]);
    cards[i].png = readFileSync(await download.path());
    cards[i].file = download.suggestedFilename();
  }
  return cards;
}

// The PNGs ditd's API gives for the same request, to compare with the gallery's bytes.
async function apiImages(base, body, headers = {}) {
  const r = await fetch(base + '/generate', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  check(r.status === 200, 'POST /generate -> ' + r.status);
  return (await r.json()).images.map((im) => Buffer.from(im.b64, 'base64'));
}

/* ---- scenarios --------------------------------------------------------------- */

async function scenarioPage(a, dir, shots) {
  // One guided image per forward, so a job can wait in the queue behind another.
  const d = await startDitd(a, dir, ['--max-batch', '2']);
  const ctx = await openBrowser(dir);
  const problems = [];
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    watch(page, d.base, problems);
    const resp = await page.goto(d.base + '/');
    const h = resp.headers();
    check(resp.status() === 200 && h['content-type'].startsWith('text/html'), 'GET / ' + resp.status());
    check(h['content-security-policy'].includes("default-src 'none'"), 'CSP ' + h['content-security-policy']);
    await page.waitForSelector('#status[data-state="ready"]');
    const classes = (await (await fetch(d.base + '/classes')).json()).classes;
    const options = await page.$$eval('#class option', (os) => os.map((o) => o.textContent));
    check(options.length === classes.length, 'the picker lists ' + options.length + ' classes');

    // Generate two sneakers with a fixed seed; watch the run.
    const req = { className: 'sneaker', cfg: 4, steps: 40, sampler: 'ddpm', n: 2, seed: '1234' };
    await fillForm(page, req);
    await recordRun(page);
    await page.click('#generate');
    await runState(page, 'done');
    const seen = await page.evaluate(() => window.__seen);
    const steps = seen.info.map((t) => /^step (\d+) \/ (\d+)/.exec(t)).filter(Boolean).map((m) => Number(m[1]));
    check(steps.length >= 3, 'progress shown ' + steps.length + ' times: ' + seen.info.join(' | '));
    check(steps.every((s, i) => i === 0 || s >= steps[i - 1]) && steps.at(-1) <= 80, 'steps ' + steps);
    check(seen.info.some((t) => t.includes('ETA')), 'no ETA shown');
    check(seen.previews >= 4, 'previews shown ' + seen.previews + ' times');
    check(/^done in .* seed 1234$/.test(await page.textContent('#runinfo')), 'final line');

    let cards = await galleryCards(page);
    check(cards.length === 2, cards.length + ' cards');
    const expect = await apiImages(d.base, { class: 7, cfg: 4, steps: 40, sampler: 'ddpm', n: 2, seed: 1234 });
    for (const c of cards) {
      const png = Buffer.from(c.png);
      const info = pngInfo(png);
      check(c.width === 32 && info.width === 32 && c.shown >= 128, 'size ' + c.width + ' shown ' + c.shown);
      check(c.hi - c.lo > 100 && c.std > 20, 'blank image: ' + JSON.stringify([c.lo, c.hi, c.std]));
      check(info.text.class === '7' && info.text.seed === '1234' && info.text.steps.startsWith('40') &&
            info.text.cfg === '4' && info.text.sampler === 'ddpm' && info.text.index === String(c.index),
            'metadata ' + JSON.stringify(info.text));
      check(png.equals(expect[c.index]), 'image ' + c.index + ' differs from POST /generate');
      check(c.file === 'ditd-sneaker-seed1234-' + c.index + '.png', 'file name ' + c.file);
    }
    console.log('generated 2 images: progress at steps ' + steps.join(','), ', previews', seen.previews);

    // Same again: the same request, the same bytes.
    await page.click('#gallery .card[data-index="0"] button.again');
    await runState(page, 'done');
    cards = await galleryCards(page);
    check(cards.length === 4 && Buffer.from(cards[0].png).equals(expect[cards[0].index]) &&
          Buffer.from(cards[1].png).equals(expect[cards[1].index]), 'same again gave other images');

    // Vary seed: one image with another seed.
    await page.click('#gallery .card[data-index="0"] button.vary');
    await runState(page, 'done');
    cards = await galleryCards(page);
    check(cards.length === 5 && cards[0].seed !== '1234' && cards[0].hi - cards[0].lo > 100, 'vary seed');
    check(pngInfo(cards[0].png).text.seed === cards[0].seed, 'varied seed in the metadata');

    // Queue behind another client's job, then cancel the long run once it is under way.
    const other = await fetch(d.base + '/jobs', { method: 'POST', body: JSON.stringify({ class: 0, steps: 60 }) });
    check(other.status === 202, 'the other job');
    await fillForm(page, { className: 'bag', cfg: 4, steps: 1000, sampler: 'ddpm', n: 1, seed: '' });
    await recordRun(page);
    await page.click('#generate');
    await page.waitForFunction(() => /^step \d+/.test(document.getElementById('runinfo').textContent));
    const waited = (await page.evaluate(() => window.__seen.info)).filter((t) => t.startsWith('queued'));
    check(waited.includes('queued: next to start'), 'queue position not shown: ' + waited);
    await page.click('#cancel');
    await runState(page, 'cancelled', 10000);
    check((await page.textContent('#runinfo')).includes('cancelled (client)'), 'cancel line');
    check(await page.isEnabled('#generate') && await page.isHidden('#cancel'), 'buttons after cancel');
    check((await page.$$('#gallery .card')).length === 5, 'a cancelled run added images');
    const listed = await (await fetch(d.base + '/jobs?status=cancelled')).json();
    check(listed.jobs.length === 1 && listed.jobs[0].class_name === 'bag', 'cancelled job ' + JSON.stringify(listed));
    console.log('queued behind another job (' + waited.join(', ') + '), then cancelled');

    // A few more classes for the picture, then the queue panel.
    for (const [name, seed] of [['dress', '11'], ['ankle boot', '5'], ['trouser', '3']]) {
      await fillForm(page, { className: name, cfg: 4, steps: 40, sampler: 'ddpm', n: 1, seed });
      await page.click('#generate');
      await runState(page, 'done');
    }
    await page.click('#queue summary');
    await page.waitForSelector('#queuerows tr td.id');
    const rows = await page.$$eval('#queuerows tr', (rs) => rs.map((r) => r.textContent));
    check(rows.some((r) => r.includes('cancelled')) && rows.some((r) => r.includes('completed')), 'queue ' + rows);
    await page.click('#queue summary');

    // The picture for the README: a run under way above the gallery, then cancelled.
    await fillForm(page, { className: 'sneaker', cfg: 4, steps: 250, sampler: 'ddpm', n: 2, seed: '2024' });
    await page.click('#generate');
    await page.waitForFunction(() => document.getElementById('bar').value >= 0.6, null, { timeout: 30000 });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(shots, 'web-ui.png') });
    await page.click('#cancel');
    await runState(page, 'cancelled', 10000);

    // A phone-width screen: nothing wider than the screen, the controls reachable.
    const phone = await ctx.newPage();
    watch(phone, d.base, problems);
    await phone.setViewportSize({ width: 390, height: 844 });
    await phone.goto(d.base + '/');
    await phone.waitForSelector('#status[data-state="ready"]');
    await fillForm(phone, { className: 'pullover', cfg: 4, steps: 30, sampler: 'ddim', n: 2, seed: '77' });
    await phone.click('#generate');
    await runState(phone, 'done');
    const layout = await phone.evaluate(() => ({
      scroll: document.documentElement.scrollWidth, width: window.innerWidth,
      button: document.getElementById('generate').getBoundingClientRect().toJSON(),
      card: document.querySelector('#gallery .card').getBoundingClientRect().toJSON(),
    }));
    check(layout.scroll <= layout.width, 'page wider than a phone: ' + JSON.stringify(layout));
    check(layout.button.left >= 0 && layout.button.right <= layout.width && layout.button.height >= 36,
          'generate button ' + JSON.stringify(layout.button));
    check(layout.card.right <= layout.width, 'gallery card off screen');
    await phone.screenshot({ path: join(shots, 'web-ui-phone.png'), fullPage: true });
    check(problems.length === 0, problems.join('\n'));
  } finally {
    await ctx.close();
    d.stop();
  }
}

async function scenarioApiKey(a, dir, shots) {
  const KEY = 'k-' + Math.random().toString(36).slice(2);
  const d = await startDitd(a, dir, ['--api-keys', KEY]);
  const ctx = await openBrowser(dir);
  const problems = [];
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    watch(page, d.base, problems);
    const withKey = [];
    page.on('request', (r) => {
      if (r.url().includes(KEY)) problems.push('the key in a URL: ' + r.url());
      if (r.headers().authorization === 'Bearer ' + KEY) withKey.push(new URL(r.url()).pathname);
    });
    await page.goto(d.base + '/');
    // The page loads without a key and asks for one (the API's 401 shows as a console error
    // of the failed fetch: expected here, so the list of problems starts after it).
    await page.waitForSelector('#status[data-state="bad"]');
    check(await page.isDisabled('#generate'), 'generate enabled without a key');
    check((await page.textContent('#error')).includes('API key'), 'no prompt for a key');
    check(await page.$eval('#keybox', (e) => e.open), 'key box closed');
    problems.length = 0;
    await page.fill('#key', 'wrong-key');
    await page.click('#keysave');
    await page.waitForFunction(() => document.getElementById('error').textContent.includes('refused'));
    problems.length = 0;
    await page.fill('#key', KEY);
    await page.click('#keysave');
    await page.waitForSelector('#status[data-state="ready"]');
    await fillForm(page, { className: 'coat', cfg: 4, steps: 30, sampler: 'ddpm', n: 1, seed: '9' });
    await page.click('#generate');
    await runState(page, 'done');
    const cards = await galleryCards(page);
    check(cards.length === 1 && cards[0].hi - cards[0].lo > 100, 'image with a key');
    const expect = await apiImages(d.base, { class: 4, cfg: 4, steps: 30, n: 1, seed: 9 },
                                   { Authorization: 'Bearer ' + KEY });
    check(Buffer.from(cards[0].png).equals(expect[0]), 'keyed image differs from the API');
    check(withKey.some((p) => /^\/jobs\/[0-9a-f]{16}\/events$/.test(p)), 'event stream without the key: ' + withKey);
    // The key stays for this tab: a reload is ready at once, the gallery is still there.
    await page.reload();
    await page.waitForSelector('#status[data-state="ready"]');
    check((await page.$$('#gallery .card')).length === 1, 'gallery lost on reload');
    check((await page.textContent('#gallery .card .meta')).startsWith('coat'), 'restored caption');
    await page.screenshot({ path: join(shots, 'web-ui-apikey.png') });
    check(problems.length === 0, problems.join('\n'));
  } finally {
    await ctx.close();
    d.stop();
  }
}

// A page of another web app, served on 127.0.0.1 at a port of its own: another origin.
async function otherApp() {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>another app</title><p>another app</p>');
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { port: server.address().port, close: () => server.close() };
}

// What the page at `origin` gets from ditd with fetch(): the answers as plain objects, or the
// error fetch() threw.
async function callFrom(page, base, key) {
  return page.evaluate(async ({ base, key }) => {
    // The headers the OpenAI JavaScript client adds in a browser (dangerouslyAllowBrowser).
    const stainless = {
      'X-Stainless-Lang': 'js', 'X-Stainless-Package-Version': '4.77.0', 'X-Stainless-OS': 'Unknown',
      'X-Stainless-Arch': 'unknown', 'X-Stainless-Runtime': 'browser:chrome',
      'X-Stainless-Runtime-Version': '156.0.0', 'X-Stainless-Retry-Count': '0', 'X-Stainless-Timeout': '600',
    };
    const auth = { Authorization: 'Bearer ' + key, 'Content-Type': 'application/json' };
    const out = {};
    try {
      let r = await fetch(base + '/v1/images/generations', {
        method: 'POST', headers: { ...auth, ...stainless, Accept: 'application/json' },
        body: JSON.stringify({ prompt: 'sneaker', n: 1, response_format: 'b64_json', seed: 3, steps: 8 }),
      });
      out.openai = { status: r.status, seed: r.headers.get('X-Seed'), id: r.headers.get('X-Request-Id'),
                     images: (await r.json()).data.length };
      const job = { method: 'POST', headers: { ...auth, 'Idempotency-Key': 'cors-1' },
                    body: JSON.stringify({ class: 2, steps: 6, seed: 4 }) };
      r = await fetch(base + '/jobs', job);
      out.job = { status: r.status, location: r.headers.get('Location') };
      await r.json();
      r = await fetch(base + '/jobs', job);
      out.again = { status: r.status, replayed: r.headers.get('Idempotent-Replayed'),
                    location: r.headers.get('Location') };
      await r.json();
      // The event stream through fetch (EventSource cannot send a key), resumed after event 1.
      r = await fetch(base + out.job.location + '/events',
                      { headers: { Authorization: 'Bearer ' + key, 'Last-Event-ID': '1' } });
      const text = await r.text();
      out.events = [...text.matchAll(/^event: (\S+)$/gm)].map((m) => m[1]);
      out.ids = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    } catch (e) {
      out.error = String(e);
    }
    return out;
  }, { base, key });
}

async function scenarioCors(a, dir) {
  const KEY = 'k-cors';
  const app = await otherApp();
  const allowed = 'http://127.0.0.1:' + app.port;
  const d = await startDitd(a, dir, ['--api-keys', KEY, '--cors-origins', allowed]);
  const ctx = await openBrowser(dir);
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    await page.goto(allowed + '/');
    const ok = await callFrom(page, d.base, KEY);
    check(!ok.error, 'fetch from an allowed origin failed: ' + ok.error + '\n' + d.log.join('').slice(-2000));
    check(ok.openai.status === 200 && ok.openai.seed === '3' && ok.openai.images === 1 &&
          /^[0-9a-f]{16}$/.test(ok.openai.id), 'OpenAI route ' + JSON.stringify(ok.openai));
    check(ok.job.status === 202 && /^\/jobs\/[0-9a-f]{16}$/.test(ok.job.location), 'job ' + JSON.stringify(ok.job));
    check(ok.again.status === 200 && ok.again.replayed === 'true' && ok.again.location === ok.job.location,
          'replay ' + JSON.stringify(ok.again));
    check(ok.events.at(-1) === 'done' && ok.ids[0] === 2 && !ok.events.includes('queued'),
          'events after Last-Event-ID 1: ' + ok.events + ' ids ' + ok.ids);
    // The same app under another name (localhost is another origin) is not in the list.
    await page.goto('http://localhost:' + app.port + '/');
    const refused = await callFrom(page, d.base, KEY);
    check(refused.error && refused.error.includes('Failed to fetch'), 'a foreign origin got ' + JSON.stringify(refused));
    console.log('allowed origin: OpenAI route, job, replay and events (' + ok.events.length +
                ' after Last-Event-ID) read; foreign origin refused');
  } finally {
    await ctx.close();
    d.stop();
    app.close();
  }
}

const a = parseArgs(process.argv.slice(2));
const dir = mkdtempSync(join(tmpdir(), 'ditd-browser-'));
const shots = a.shots || join(dir, 'shots');
mkdirSync(shots, { recursive: true });
const t0 = Date.now();
try {
  await ({ page: scenarioPage, apikey: scenarioApiKey, cors: scenarioCors })[a.scenario](a, dir, shots);
  console.log('browser ' + a.scenario + ': ok in ' + ((Date.now() - t0) / 1000).toFixed(1) + ' s' +
              (a.shots ? '; screenshots in ' + a.shots : ''));
} catch (e) {
  console.error(e.stack || String(e));
  process.exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
