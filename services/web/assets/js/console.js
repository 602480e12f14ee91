// The operator console: the pipeline live (rates in/out, lag per stage and
// partition, dead letters by reason, late events, ClickHouse rows), the
// day's leaderboard and the fraud review queue with each flagged day's
// evidence (#evidence/VIN/DATE: its track and marks on the map, its
// counters and the rules that fired, in the owner app's words), and a
// sample of the dead letters per reason. The operator's bearer token is
// kept in sessionStorage only.
import { el, show, status, api, fmt, baseMap, explain, drawDay, markWords, b64ToBytes, bytesToHex } from './common.js';

const view = () => document.getElementById('view');
let token = sessionStorage.getItem('minecart.operator') || '';
let last = null; // previous metrics sample, for rates
let timer = null;

const sum = (xs, f = () => true) => (xs || []).filter((s) => f(s.labels || {})).reduce((n, s) => n + s.value, 0);
const by = (xs, key) => { const m = {}; for (const s of xs || []) { const k = (s.labels || {})[key] || ''; m[k] = (m[k] || 0) + s.value; } return m; };

async function poll() {
  let m;
  try {
    m = (await api('/v1/console/metrics', { token })).metrics;
  } catch (e) {
    if (e.code === 401 || e.code === 403) { sessionStorage.removeItem('minecart.operator'); token = ''; return ask('That token was refused.'); }
    return status('Metrics out of reach: ' + e.message, 'error');
  }
  const now = Date.now();
  const stages = ['ingest', 'scoring', 'ledger', 'settlement', 'sink'];
  const inB = by(m.minecart_pipeline_records_in_total, 'stage'), outB = by(m.minecart_pipeline_records_out_total, 'stage');
  const rate = (cur, prev) => (last && prev !== undefined ? Math.max(0, (cur - prev) / ((now - last.t) / 1000)) : 0);
  const lagRows = (m.minecart_pipeline_consumer_lag || []).slice()
    .sort((a, b) => (a.labels.stage + a.labels.topic + a.labels.partition.padStart(4, '0')).localeCompare(b.labels.stage + b.labels.topic + b.labels.partition.padStart(4, '0')));
  const lagBy = by(m.minecart_pipeline_consumer_lag, 'stage');
  const dead = m.minecart_pipeline_records_dead_total || [];
  document.getElementById('pipeline').replaceChildren(
    el('table', { id: 'stages' },
      el('caption', { text: 'Stages' }),
      el('thead', {}, el('tr', {}, ['Stage', 'In', 'In/s', 'Out', 'Out/s', 'Lag'].map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, stages.map((s) => el('tr', { 'data-stage': s },
        el('th', { scope: 'row', text: s }), el('td', { text: fmt.int(inB[s] || 0) }),
        el('td', { class: 'rate-in', text: fmt.int(Math.round(rate(inB[s] || 0, last && last.in[s]))) }),
        el('td', { text: fmt.int(outB[s] || 0) }),
        el('td', { text: fmt.int(Math.round(rate(outB[s] || 0, last && last.out[s]))) }),
        el('td', { class: 'lag', text: fmt.int(lagBy[s] || 0) }))))),
    el('dl', { class: 'kv summary' },
      el('dt', { text: 'Gateway events' }), el('dd', { id: 'gateway-events', text: fmt.int(sum(m.minecart_gateway_events_total)) }),
      el('dt', { text: 'Late events' }), el('dd', { id: 'late', text: fmt.int(sum(m.minecart_scoring_late_events_total)) }),
      el('dt', { text: 'ClickHouse rows' }), el('dd', { id: 'ch-rows', text: fmt.int(sum(m.minecart_sink_inserted_rows_total)) }),
      el('dt', { text: 'Ledger entries' }), el('dd', { text: fmt.int(sum(m.minecart_ledger_tree_size)) }),
      el('dt', { text: 'Bad ledger blocks' }), el('dd', { text: fmt.int(sum(m.minecart_ledger_bad_blocks_total)) })),
    el('h3', { text: 'Dead letters by reason' }),
    el('ul', { id: 'dead' }, dead.filter((s) => s.value > 0).map((s) => el('li', { text: `${s.labels.stage}/${s.labels.code}: ${fmt.int(s.value)}` })),
      dead.some((s) => s.value > 0) ? null : el('li', { text: 'none' })),
    publisher(m, now),
    el('h3', { text: 'Witnesses' }),
    el('ul', { id: 'witness' }, Object.keys(m).filter((k) => k.startsWith('minecart_witness_')).flatMap((k) => m[k].map((s) =>
      el('li', { text: `${k.replace('minecart_witness_', '')}${s.labels ? ' ' + Object.values(s.labels).join('/') : ''}: ${fmt.int(s.value)}` }))),
      Object.keys(m).some((k) => k.startsWith('minecart_witness_')) ? null : el('li', { text: 'no witness runs in this process (the explorer lists the cosignatures of the checkpoint)' })),
    el('details', {}, el('summary', { text: 'Lag per partition' }),
      el('table', { id: 'lag-partitions' },
        el('thead', {}, el('tr', {}, ['Stage', 'Topic', 'Partition', 'Lag'].map((h) => el('th', { scope: 'col', text: h })))),
        el('tbody', {}, lagRows.map((s) => el('tr', {}, el('td', { text: s.labels.stage }), el('td', { text: s.labels.topic }),
          el('td', { text: s.labels.partition }), el('td', { text: fmt.int(s.value) })))))));
  document.getElementById('updated').textContent = 'updated ' + new Date(now).toLocaleTimeString();
  last = { t: now, in: inB, out: outB };
}

// publisher is the ledger publisher's status from its metrics: the
// published (witness-cosigned) size against the head, the quorum, and per
// witness the mean cosign latency and the refusals by code.
function publisher(m, now) {
  const pub = m.minecart_ledger_published_tree_size;
  if (!pub) return el('div', { id: 'publisher' }, el('h3', { text: 'Ledger publisher' }), el('p', { text: 'no ledger publisher runs in this process' }));
  const size = sum(pub), behind = sum(m.minecart_ledger_unpublished_entries), since = sum(m.minecart_ledger_quorum_pending_since_seconds);
  const lat = {}, refused = {};
  for (const s of m.minecart_ledger_cosign_seconds || []) lat[s.labels.witness] = s;
  for (const s of m.minecart_ledger_cosign_refusals_total || []) {
    const w = s.labels.witness;
    (refused[w] = refused[w] || []).push(s);
  }
  const witnesses = [...new Set([...Object.keys(lat), ...Object.keys(refused)])].sort();
  const quorum = since > 0 ? `waiting for quorum since ${fmt.int(Math.max(0, Math.round(now / 1000 - since)))} s` : 'quorum OK';
  return el('div', { id: 'publisher' },
    el('h3', { text: 'Ledger publisher' }),
    el('dl', { class: 'kv' },
      el('dt', { text: 'Published (cosigned) size' }), el('dd', { id: 'published-size', text: String(size) }),
      el('dt', { text: 'Head size' }), el('dd', { id: 'head-size', text: String(size + behind) }),
      el('dt', { text: 'Unpublished entries' }), el('dd', { id: 'unpublished', text: fmt.int(behind) }),
      el('dt', { text: 'Quorum' }), el('dd', { id: 'quorum-status', 'data-quorum': since > 0 ? 'waiting' : 'ok', text: quorum })),
    el('table', { id: 'cosigners' },
      el('caption', { text: 'Witness cosignatures' }),
      el('thead', {}, el('tr', {}, ['Witness', 'Cosigned', 'Mean latency', 'Refusals'].map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, witnesses.map((w) => {
        const l = lat[w], r = (refused[w] || []).filter((s) => s.value > 0);
        return el('tr', { 'data-witness': w }, el('th', { scope: 'row', text: w }), el('td', { text: fmt.int(l ? l.value : 0) }),
          el('td', { text: l && l.value > 0 ? `${Math.round(1000 * l.sum / l.value)} ms` : '–' }),
          el('td', { text: r.length ? r.map((s) => `${s.labels.code}: ${fmt.int(s.value)}`).join(', ') : 'none' }));
      }))));
}

let cellMap = null, cellLayer = null;
async function cells(date) {
  const div = document.getElementById('fleet-map');
  try {
    const c = await api(`/v1/fleet/cells?date=${date}`, { token });
    if (!cellMap) cellMap = await baseMap(div, 'Fleet density by cell');
    if (cellLayer) cellLayer.remove();
    cellLayer = L.layerGroup().addTo(cellMap);
    const max = Math.max(1, ...c.cells.map((x) => x.events));
    for (const x of c.cells) {
      L.rectangle([[x.lat, x.lon], [x.lat + c.cell_deg, x.lon + c.cell_deg]], { weight: 0, fillColor: '#c92a2a',
        fillOpacity: 0.15 + 0.75 * x.events / max, className: 'cell' })
        .bindTooltip(`${x.vehicles} vehicle(s), ${fmt.int(x.events)} events`).addTo(cellLayer);
    }
    if (c.cells.length) cellMap.fitBounds(c.cells.map((x) => [x.lat, x.lon]), { padding: [20, 20], maxZoom: 12 });
    document.getElementById('cells-caption').textContent = `${c.cells.length} cells of ${c.cell_deg}° on ${c.date}`;
  } catch (e) {
    document.getElementById('cells-caption').textContent = 'Cells out of reach: ' + e.message;
  }
}

async function scores() {
  const date = document.getElementById('date').value;
  cells(date);
  const out = document.getElementById('scores');
  try {
    const d = await api(`/v1/fleet/scores?date=${date}&limit=1000`, { token });
    const flagged = d.scores.filter((s) => s.flags && s.flags.length);
    show(out,
      el('h3', { text: `Leaderboard ${d.date}` }),
      el('ol', { id: 'leaders' }, d.scores.slice(0, 10).map((s) => el('li', { text: `${s.vehicle_id}: ${fmt.int(s.points)} points, score ${s.score.toFixed(1)}, ${fmt.km(s.distance_km)}` }))),
      el('h3', { text: `Fraud review queue (${flagged.length} flagged days)` }),
      el('table', { id: 'fraud' },
        el('caption', { text: 'Flagged vehicle-days: open one to see its evidence' }),
        el('thead', {}, el('tr', {}, ['Vehicle', 'Flags', 'Score', 'km', 'Points', 'Evidence'].map((h) => el('th', { scope: 'col', text: h })))),
        el('tbody', {}, flagged.map((s) => el('tr', { 'data-vin': s.vehicle_id }, el('td', { text: s.vehicle_id }), el('td', { text: s.flags.join(', ') }),
          el('td', { text: s.score.toFixed(1) }), el('td', { text: s.distance_km.toFixed(1) }), el('td', { text: fmt.int(s.points) }),
          el('td', {}, el('a', { href: `#evidence/${s.vehicle_id}/${d.date}`, class: 'evidence-link', text: 'Evidence' })))))),
      flagged.length ? null : el('p', { text: 'No flagged day. Any vehicle-day\'s evidence opens at #evidence/VIN/DATE.' }));
  } catch (e) {
    show(out, el('p', { class: 'error', text: 'Scores out of reach: ' + e.message }));
  }
}

// evidence shows a vehicle-day as a fraud reviewer needs it: the track and
// the marks on the map, the DailyScore's counters, and the rules that
// fired in the owner app's words (common.js explain).
async function evidence(vin, date) {
  const out = document.getElementById('evidence');
  show(out, el('h3', { text: `Evidence: ${vin} on ${date}` }), el('p', { text: 'Loading…' }));
  try {
    const reps = (await api(`/v1/vehicles/${vin}/reports?from=${date}&to=${date}`, { token })).reports;
    const r = reps.find((x) => x.date === date);
    if (!r) throw new Error(`no report of ${vin} on ${date}`);
    const q = `from=${encodeURIComponent(r.window_start)}&to=${encodeURIComponent(r.window_end)}`;
    const [track, marks] = await Promise.all([
      api(`/v1/vehicles/${vin}/track?${q}&max_points=3000&limit=3000`, { token }),
      api(`/v1/vehicles/${vin}/marks?${q}`, { token }),
    ]);
    const mapDiv = el('div', { id: 'evidence-map' });
    const counters = [['Events', r.events], ['Late events', r.late_events], ['GPS jumps', r.gps_jumps],
      ['Fixes rejected (HDOP)', r.hdop_rejected], ['Odometer rollbacks', r.odometer_rollbacks],
      ['Harsh brakes', r.harsh_brake], ['Harsh accelerations', r.harsh_accel], ['Harsh corners', r.harsh_corner],
      ['Speeding', fmt.dur(r.speeding_s || 0)], ['Night', fmt.dur(r.night_s || 0)], ['Distance', fmt.km(r.distance_km)],
      ['Score', r.score.toFixed(1)], ['Points', fmt.int(r.points)]];
    const rules = (r.flags || []);
    show(out,
      el('h3', { id: 'evidence-title', tabindex: '-1', text: `Evidence: ${vin} on ${date}` }),
      el('h4', { text: 'Rules that fired' }),
      el('ul', { id: 'evidence-rules' }, rules.length ? rules.map((f, i) => el('li', { 'data-flag': f, text: `${f}: ${(r.flag_reasons || [])[i] || ''}` }))
        : el('li', { text: 'none: this day is not flagged' })),
      el('h4', { text: 'In plain words' }),
      el('ul', { id: 'evidence-explain' }, explain(r).map((x) => el('li', { text: x }))),
      el('h4', { text: 'Counters' }),
      el('dl', { id: 'evidence-counters', class: 'kv' }, counters.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: String(v ?? 0) })])),
      el('h4', { text: `Track and ${marks.marks.length} mark(s)` }),
      mapDiv,
      el('ol', { id: 'evidence-marks' }, marks.marks.map((m) => el('li', { 'data-kind': m.kind,
        text: `${fmt.time(m.start)}: ${markWords[m.kind][0]} at ${m.speed_kmh.toFixed(0)} km/h` }))));
    await drawDay(mapDiv, `Track of ${vin} on ${date}`, track, marks);
    document.getElementById('evidence-title').focus(); // keyboard users land on what they opened
  } catch (e) {
    show(out, el('h3', { text: `Evidence: ${vin} on ${date}` }), el('p', { class: 'error', role: 'alert', text: 'Evidence out of reach: ' + e.message }));
  }
}

function route() {
  const m = location.hash.match(/^#\/?evidence\/([^/]+)\/(\d{4}-\d{2}-\d{2})$/);
  if (m) evidence(decodeURIComponent(m[1]), m[2]);
}

// deadLetters shows the newest dead letters of each reason (operators
// only: the payload is the rejected record's, cut to 512 bytes).
async function deadLetters() {
  const out = document.getElementById('dead-samples');
  if (!out) return;
  try {
    const d = await api('/v1/console/deadletters', { token });
    show(out,
      el('p', { text: `${fmt.int(d.read)} newest record(s) of ${d.topic} read (up to ${fmt.int(d.window)} per partition).` }),
      d.reasons.length ? null : el('p', { text: 'No dead letter.' }),
      d.reasons.map((g) => el('table', { class: 'dead-reason', 'data-reason': `${g.stage}/${g.code}` },
        el('caption', { text: `${g.stage}/${g.code}: ${fmt.int(g.seen)} read, the newest ${g.samples.length}` }),
        el('thead', {}, el('tr', {}, ['Dead-lettered', 'From', 'Error', 'Payload'].map((h) => el('th', { scope: 'col', text: h })))),
        el('tbody', {}, g.samples.map((x) => {
          const head = bytesToHex(b64ToBytes(x.value).slice(0, 32));
          return el('tr', { class: 'dead-sample' }, el('td', { text: fmt.time(x.time) }),
            el('td', { text: `${x.source_topic}/${x.source_partition}@${x.source_offset}` }), el('td', { class: 'error-text', text: x.error }),
            el('td', {}, el('code', { text: `${fmt.int(x.value_bytes)} bytes: ${head}${x.value_bytes > 32 ? '…' : ''}` })));
        })))));
  } catch (e) {
    show(out, el('p', { class: 'error', text: 'Dead letters out of reach: ' + e.message }));
  }
}

function ask(msg) {
  clearInterval(timer);
  document.getElementById('token').hidden = false;
  document.getElementById('token-error').textContent = msg || '';
  show(view());
}

// lastScoredDay is the local date of the newest credit block (event
// clock: its timestamp is the window end, the local midnight after the day).
async function lastScoredDay() {
  try {
    const b = await api('/v1/ledger/blocks?limit=100');
    const ev = b.blocks.find((x) => x.clock === 'event');
    if (ev) return new Date(ev.timestamp_ms - 12 * 3600e3).toISOString().slice(0, 10);
  } catch { /* the ledger's head is public; without it, yesterday */ }
  return new Date(Date.now() - 864e5).toISOString().slice(0, 10);
}

async function open() {
  document.getElementById('token').hidden = true;
  const date = el('input', { id: 'date', type: 'date', value: await lastScoredDay() });
  show(view(),
    el('section', {}, el('h2', {}, 'Pipeline ', el('small', { id: 'updated' })), el('div', { id: 'pipeline' })),
    el('section', {}, el('h2', { text: 'Scores' }),
      el('form', { id: 'scores-form', class: 'row' }, el('label', { for: 'date', text: 'Day' }), date, el('button', { type: 'submit' }, 'Show')),
      el('div', { id: 'scores' })),
    el('section', { id: 'evidence', 'aria-live': 'polite' }),
    el('section', {}, el('h2', { text: 'Dead letters: newest per reason' }), el('div', { id: 'dead-samples' })),
    el('section', {}, el('h2', { text: 'Fleet' }), el('p', { id: 'cells-caption' }), el('div', { id: 'fleet-map' })));
  document.getElementById('scores-form').addEventListener('submit', (ev) => { ev.preventDefault(); scores(); });
  poll();
  scores();
  deadLetters();
  route();
  window.addEventListener('hashchange', route);
  let n = 0;
  timer = setInterval(() => { poll(); if (++n % 5 === 0) deadLetters(); }, 2000);
}

function boot() {
  document.getElementById('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token = ev.target.token.value.trim();
    sessionStorage.setItem('minecart.operator', token);
    ev.target.token.value = '';
    open();
  });
  if (token) open(); else ask();
}
if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot); else boot();
