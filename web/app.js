/*
 * app.js - ditd's web page (docs/web.md). Plain browser JavaScript, no
 * libraries, nothing loaded from elsewhere. It reads /info and /classes,
 * creates a job (POST /jobs), follows its event stream with fetch() (so the
 * API key travels in the Authorization header, never in a URL), shows
 * progress and previews, and keeps this session's images in a gallery.
 * Text from the server is only ever set as textContent.
 */
'use strict';

const $ = (id) => document.getElementById(id);
const KEY_ITEM = 'ditd.key';
const GALLERY_ITEM = 'ditd.gallery';
const GALLERY_MAX = 60;

const state = {
  info: null,
  classes: [],        // [{id, name}]
  job: null,          // id of the job running, or null
  abort: null,        // AbortController of its event stream
  gallery: [],        // [{png (base64), meta}] newest first
  queueTimer: null,
};

/* ---- the API key ---------------------------------------------------------- */

function storedKey() {
  return sessionStorage.getItem(KEY_ITEM) || localStorage.getItem(KEY_ITEM) || '';
}

function saveKey() {
  const key = $('key').value.trim();
  sessionStorage.removeItem(KEY_ITEM);
  localStorage.removeItem(KEY_ITEM);
  if (key) {
    ($('remember').checked ? localStorage : sessionStorage).setItem(KEY_ITEM, key);
  }
  $('keybox').open = false;
  load();
}

function headers(extra) {
  const h = Object.assign({}, extra);
  const key = storedKey();
  if (key) h.Authorization = 'Bearer ' + key;
  return h;
}

/* ---- talking to ditd ----------------------------------------------------- */

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// fetch + JSON, turning ditd's error envelope into an ApiError.
async function api(method, path, body) {
  const init = { method, headers: headers({ Accept: 'application/json' }), cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = body;
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'cannot reach ditd (' + e.message + ')');
  }
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (e) {
    data = null;
  }
  if (!r.ok) {
    const msg = data && data.error && data.error.message ? data.error.message : r.status + ' ' + r.statusText;
    throw new ApiError(r.status, msg);
  }
  return data;
}

// Read a text/event-stream response: calls onEvent(name, data, id) per event.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = 'message', data = '', id = null;
      for (const line of frame.split('\n')) {
        if (line.startsWith(':')) continue;            // keep-alive comment
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') name = val;
        else if (field === 'data') data += (data ? '\n' : '') + val;
        else if (field === 'id') id = val;
      }
      if (data) onEvent(name, JSON.parse(data), id);
    }
  }
}

// Follow a job's events until a terminal event, resuming after network
// errors from the last event seen (Last-Event-ID).
async function followJob(id, signal, onEvent) {
  let last = '0', ended = false, tries = 0;
  const handle = (name, data, eid) => {
    if (eid) last = eid;
    if (name === 'done' || name === 'error' || name === 'cancelled') ended = true;
    onEvent(name, data);
  };
  while (!ended) {
    try {
      const r = await fetch('/jobs/' + id + '/events', {
        headers: headers({ Accept: 'text/event-stream', 'Last-Event-ID': last }),
        cache: 'no-store',
        signal,
      });
      if (!r.ok) {
        const body = await r.json().catch(() => null);
        throw new ApiError(r.status, body && body.error ? body.error.message : 'HTTP ' + r.status);
      }
      await readEvents(r, handle);
      tries = 0;
    } catch (e) {
      if (signal.aborted || (e instanceof ApiError && e.status >= 400)) throw e;
      if (++tries > 5) throw new ApiError(0, 'lost the event stream: ' + e.message);
      await new Promise((ok) => setTimeout(ok, 500 * tries));
    }
  }
}

/* ---- small helpers --------------------------------------------------------- */

function b64ToBytes(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function pngUrl(b64) {
  return URL.createObjectURL(new Blob([b64ToBytes(b64)], { type: 'image/png' }));
}

// A random seed in 0 .. 2^53-1, the range the daemon draws from.
function randomSeed() {
  const w = new Uint32Array(2);
  crypto.getRandomValues(w);
  return String((w[0] & 0x1fffff) * 4294967296 + w[1]);
}

// A class as people read it ("ankle boot"; ids for unnamed classes).
function className(id) {
  const c = state.classes.find((x) => x.id === id);
  return c && c.name ? c.name.replace(/_/g, ' ') : 'class ' + id;
}

function seconds(ms) {
  return ms >= 10000 ? Math.round(ms / 1000) + ' s' : (ms / 1000).toFixed(1) + ' s';
}

function showError(msg) {
  const e = $('error');
  e.textContent = msg || '';
  e.hidden = !msg;
}

function setStatus(text, kind) {
  const s = $('status');
  s.textContent = text;
  s.dataset.state = kind;
}

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

/* ---- loading the model's description ------------------------------------ */

async function load() {
  showError('');
  try {
    const [info, classes] = [await api('GET', '/info'), await api('GET', '/classes')];
    state.info = info;
    state.classes = classes.classes;
  } catch (e) {
    if (e.status === 401) {
      setStatus('API key needed', 'bad');
      showError(storedKey() ? 'ditd refused this API key: ' + e.message
                            : 'This server needs an API key: enter it under "API key".');
      $('keybox').open = true;
      $('key').focus();
    } else if (e.status === 503) {
      setStatus('model loading', 'wait');
      setTimeout(load, 1000);
    } else {
      setStatus('unreachable', 'bad');
      showError(e.message);
    }
    $('generate').disabled = true;
    return;
  }
  fillForm();
  setStatus('ready', 'ready');
  $('generate').disabled = false;
}

function fillForm() {
  const info = state.info;
  const m = info.model;
  $('model').textContent = m.name + ' · ' + m.image_size + '×' + m.image_size + ' px · ' +
    m.num_classes + ' classes';
  $('version').textContent = info.build.version;
  $('compute').textContent = info.compute.workers + ' worker(s) × ' + info.compute.threads +
    ' thread(s), preview: ' + (m.preview || 'linear');
  const sel = $('class');
  const keep = sel.value;
  sel.replaceChildren(...state.classes.map((c) => el('option', { value: String(c.id) },
    c.name ? className(c.id) + ' (' + c.id + ')' : 'class ' + c.id)));
  if (keep) sel.value = keep;
  const samplers = $('sampler');
  const keepSampler = samplers.value || info.defaults.sampler;
  samplers.replaceChildren(...info.samplers.map((s) => el('option', { value: s }, s)));
  samplers.value = keepSampler;
  const cfg = $('cfg'), steps = $('steps'), n = $('n');
  cfg.max = info.limits.max_cfg;
  steps.max = info.limits.max_steps;
  n.max = info.limits.max_images;
  if (!cfg.value) cfg.value = info.defaults.cfg;
  if (!steps.value) steps.value = info.defaults.steps;
}

/* ---- a run ------------------------------------------------------------------ */

function formParams() {
  return {
    class: Number($('class').value),
    cfg: Number($('cfg').value),
    steps: Number($('steps').value),
    sampler: $('sampler').value,
    n: Number($('n').value),
    seed: $('seed').value.trim(),     // digits, or '' for a random one
  };
}

function setForm(p) {
  $('class').value = String(p.class);
  $('cfg').value = p.cfg;
  $('steps').value = p.steps;
  $('sampler').value = p.sampler;
  $('n').value = p.n;
  $('seed').value = p.seed;
}

// The POST /jobs body. The seed is spliced in as digits: a JavaScript
// number would round seeds above 2^53.
function jobBody(p) {
  const body = {
    class: p.class, cfg: p.cfg, steps: p.steps, sampler: p.sampler, n: p.n,
    preview: Math.max(1, Math.round(p.steps / 25)),
  };
  const json = JSON.stringify(body);
  return p.seed ? json.slice(0, -1) + ',"seed":' + p.seed + '}' : json;
}

function runInfo(text) {
  $('runinfo').textContent = text;
}

function setRunning(on) {
  $('generate').disabled = on;
  $('cancel').hidden = !on;
  $('cancel').disabled = false;
}

async function generate(p) {
  if (state.job) return;
  if (p.seed && !/^[0-9]{1,19}$/.test(p.seed)) {
    showError('The seed must be a whole number (or empty for a random one).');
    return;
  }
  showError('');
  const run = $('run');
  run.hidden = false;
  run.dataset.state = 'submitting';
  $('bar').value = 0;
  runInfo('submitting');
  const previews = $('previews');
  previews.replaceChildren();
  const slots = [];
  for (let k = 0; k < p.n; k++) {
    const img = el('img', { alt: 'preview of image ' + (k + 1), 'data-index': String(k) });
    slots.push(img);
    previews.append(img);
  }
  setRunning(true);
  let job;
  try {
    job = await api('POST', '/jobs', jobBody(p));
  } catch (e) {
    run.dataset.state = 'failed';
    runInfo('not started');
    showError(e.message);
    setRunning(false);
    if (e.status === 401) load();
    return;
  }
  state.job = job.id;
  state.abort = new AbortController();
  const seed = p.seed || String(job.request.seed);
  const started = performance.now();
  run.dataset.state = 'queued';
  try {
    await followJob(job.id, state.abort.signal, (name, d) => {
      if (name === 'queued') {
        runInfo(d.queue_position === 0 ? 'queued: next to start' : 'queued: position ' + (d.queue_position + 1));
      } else if (name === 'started') {
        run.dataset.state = 'running';
        runInfo('started');
      } else if (name === 'progress') {
        run.dataset.state = 'running';
        $('bar').value = d.fraction;
        runInfo('step ' + d.step + ' / ' + d.steps + ' · ETA ' + seconds(d.eta_ms) + ' · ' +
                d.steps_per_second.toFixed(1) + ' steps/s');
      } else if (name === 'preview') {
        const img = slots[d.index];
        if (img) {
          if (img.src) URL.revokeObjectURL(img.src);
          img.src = pngUrl(d.b64);
        }
      } else if (name === 'image') {
        const meta = { class: p.class, label: className(p.class), cfg: p.cfg, steps: p.steps,
                       sampler: p.sampler, n: p.n, seed, index: d.index, job: job.id };
        addToGallery(d.b64, meta, true);
        const img = slots[d.index];
        if (img) {
          if (img.src) URL.revokeObjectURL(img.src);
          img.src = pngUrl(d.b64);
        }
      } else if (name === 'done') {
        run.dataset.state = 'done';
        $('bar').value = 1;
        runInfo('done in ' + seconds(performance.now() - started) + ' · seed ' + seed);
      } else if (name === 'cancelled') {
        run.dataset.state = 'cancelled';
        runInfo('cancelled (' + d.reason + ')');
      } else if (name === 'error') {
        run.dataset.state = 'failed';
        runInfo('failed');
        showError(d.error.message);
      }
    });
  } catch (e) {
    run.dataset.state = 'failed';
    if (!state.abort.signal.aborted) showError(e.message);
  } finally {
    state.job = null;
    state.abort = null;
    setRunning(false);
    refreshQueue();
  }
}

async function cancel() {
  if (!state.job) return;
  $('cancel').disabled = true;
  runInfo('cancelling');
  try {
    await api('DELETE', '/jobs/' + state.job);
  } catch (e) {
    if (e.status !== 409) showError(e.message);   // 409: it had just ended
  }
}

/* ---- the gallery --------------------------------------------------------- */

// The class name kept with the image (a restored gallery may show before /classes answers).
function label(meta) {
  return meta.label || className(meta.class);
}

function fileName(meta) {
  const name = label(meta).replace(/[^A-Za-z0-9_-]+/g, '_');
  return 'ditd-' + name + '-seed' + meta.seed + '-' + meta.index + '.png';
}

function card(item) {
  const m = item.meta;
  const url = pngUrl(item.png);
  const c = el('figure', { class: 'card', 'data-seed': m.seed, 'data-index': String(m.index) });
  const img = el('img', { src: url, alt: label(m) + ', seed ' + m.seed });
  const meta = el('figcaption', { class: 'meta' });
  meta.append(el('b', {}, label(m)), ' · cfg ' + m.cfg + ' · ' + m.steps + ' steps · ' +
              m.sampler + ' · seed ' + m.seed + (m.n > 1 ? ' #' + m.index : ''));
  const buttons = el('div', { class: 'buttons' });
  const dl = el('a', { class: 'download', href: url, download: fileName(m) }, 'Download');
  const again = el('button', { type: 'button', class: 'again', title: 'The same request again' }, 'Same again');
  const vary = el('button', { type: 'button', class: 'vary', title: 'This image\'s settings with a new seed' },
                  'Vary seed');
  // The request that made this image again: same parameters and seed, so
  // the same pixels (image k of a request is drawn from the stream (seed, k)).
  again.addEventListener('click', () => {
    const p = { class: m.class, cfg: m.cfg, steps: m.steps, sampler: m.sampler, n: m.n, seed: m.seed };
    setForm(p);
    generate(p);
  });
  vary.addEventListener('click', () => {
    const p = { class: m.class, cfg: m.cfg, steps: m.steps, sampler: m.sampler, n: 1, seed: randomSeed() };
    setForm(p);
    generate(p);
  });
  buttons.append(dl, again, vary);
  c.append(img, meta, buttons);
  return c;
}

function renderCount() {
  $('empty').hidden = state.gallery.length > 0;
  $('count').textContent = state.gallery.length ? '(' + state.gallery.length + ')' : '';
}

function addToGallery(png, meta, save) {
  const item = { png, meta };
  state.gallery.unshift(item);
  if (state.gallery.length > GALLERY_MAX) {
    state.gallery.length = GALLERY_MAX;
    const g = $('gallery');
    while (g.children.length >= GALLERY_MAX) g.lastElementChild.remove();
  }
  $('gallery').prepend(card(item));
  renderCount();
  if (save) saveGallery();
}

function saveGallery() {
  try {
    sessionStorage.setItem(GALLERY_ITEM, JSON.stringify(state.gallery));
  } catch (e) {
    // Storage full: the gallery lives on in this page, only a reload loses it.
  }
}

function restoreGallery() {
  let items = [];
  try {
    items = JSON.parse(sessionStorage.getItem(GALLERY_ITEM) || '[]');
  } catch (e) {
    items = [];
  }
  for (const it of items.reverse()) addToGallery(it.png, it.meta, false);
  renderCount();
}

/* ---- the server's queue ------------------------------------------------- */

async function refreshQueue() {
  if (!$('queue').open) return;
  const note = (text) => {
    const tr = el('tr');
    tr.append(el('td', { colspan: '5' }, text));
    $('queuerows').replaceChildren(tr);
  };
  let list;
  try {
    list = await api('GET', '/jobs?limit=20');
  } catch (e) {
    note(e.message);
    return;
  }
  if (!list.jobs.length) {
    note('no jobs');
    return;
  }
  const rows = list.jobs.map((j) => {
    const tr = el('tr');
    const status = j.status === 'queued' && j.queue_position !== undefined
      ? 'queued #' + (j.queue_position + 1) : j.status;
    tr.append(el('td', { class: 'id' }, j.id.slice(0, 8)),
              el('td', {}, j.class_name || String(j.class)),
              el('td', {}, status),
              el('td', {}, Math.round(100 * j.progress.fraction) + ' %'),
              el('td', {}, new Date(j.created * 1000).toLocaleTimeString()));
    return tr;
  });
  $('queuerows').replaceChildren(...rows);
}

function toggleQueue() {
  clearInterval(state.queueTimer);
  state.queueTimer = null;
  if ($('queue').open) {
    refreshQueue();
    state.queueTimer = setInterval(refreshQueue, 2000);
  }
}

/* ---- wiring ------------------------------------------------------------------ */

function init() {
  $('key').value = storedKey();
  $('remember').checked = !!localStorage.getItem(KEY_ITEM);
  $('keyform').addEventListener('submit', (e) => {
    e.preventDefault();
    saveKey();
  });
  $('form').addEventListener('submit', (e) => {
    e.preventDefault();
    generate(formParams());
  });
  $('cancel').addEventListener('click', cancel);
  $('dice').addEventListener('click', () => {
    $('seed').value = randomSeed();
  });
  $('queue').addEventListener('toggle', toggleQueue);
  $('generate').disabled = true;
  restoreGallery();
  load();
}

document.addEventListener('DOMContentLoaded', init);
