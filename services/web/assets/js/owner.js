// The owner app: log in, my vehicles, a day, points with receipts checked
// in the browser, redeem (and transfer when the API is there). Hash routes:
// #/  #/day/VIN/DATE  #/points/VIN  #/receipt/VIN/LEAF  #/redeem  #/transfer
import { el, show, status, api, fmt, baseMap, speedColour, checkLeaf, verdict, b64ToBytes, APIError, markWords, explain, drawDay } from './common.js';

const view = () => document.getElementById('view');
let me = null;       // {role, id}
let vehicles = [];   // the owner's vehicle ids

const today = () => new Date().toISOString().slice(0, 10);
const daysAgo = (n) => new Date(Date.now() - n * 864e5).toISOString().slice(0, 10);

async function reports(vin) {
  return (await api(`/v1/vehicles/${vin}/reports?from=${daysAgo(365)}&to=${today()}&limit=366`)).reports;
}

async function boot() {
  document.getElementById('login-form').addEventListener('submit', login);
  document.getElementById('logout').addEventListener('click', async () => {
    await api('/v1/logout', { method: 'POST' }).catch(() => {});
    location.hash = '#/';
    location.reload();
  });
  if (document.body.dataset.transfers) document.getElementById('nav-transfer').hidden = false;
  try {
    me = await api('/v1/whoami');
  } catch (e) {
    if (e instanceof APIError && e.code === 401) return showLogin();
    return status('The API is out of reach: ' + e.message, 'error');
  }
  await enter();
}

function showLogin() {
  document.getElementById('login').hidden = false;
  document.getElementById('app').hidden = true;
  document.getElementById('owner-id').focus();
}

async function login(ev) {
  ev.preventDefault();
  const f = ev.target, err = document.getElementById('login-error');
  err.textContent = '';
  try {
    me = await api('/v1/login', { method: 'POST', body: { owner: f.owner.value.trim(), password: f.password.value } });
  } catch (e) {
    err.textContent = e.code === 401 ? 'Wrong owner id or password.' : e.message;
    return;
  }
  f.password.value = '';
  await enter();
}

async function enter() {
  document.getElementById('login').hidden = true;
  document.getElementById('app').hidden = false;
  vehicles = (await api('/v1/me/vehicles')).vehicles;
  window.addEventListener('hashchange', route);
  await route();
}

async function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  status('');
  try {
    switch (parts[0]) {
      case 'day': return await dayView(parts[1], parts[2]);
      case 'points': return await pointsView(parts[1] || vehicles[0]);
      case 'receipt': return await receiptView(parts[1], parts[2]);
      case 'redeem': return await redeemView();
      case 'transfer': return await transferView();
      default: return await vehiclesView();
    }
  } catch (e) {
    status('Could not load this page: ' + e.message, 'error');
  }
}

// ---- my vehicles ----

// tripsBy reads the vehicle's trips of the 92 days up to its newest report
// (or now) per day, week and month (GET /v1/vehicles/{vin}/trips: a stop
// over 5 minutes or the engine off ends a trip).
async function tripsBy(vin, reps) {
  const newest = reps.reduce((t, r) => Math.max(t, Date.parse(r.window_end) || 0), 0) || Date.now();
  const from = new Date(newest - 92 * 864e5).toISOString(), to = new Date(newest + 864e5).toISOString();
  const q = (by) => api(`/v1/vehicles/${vin}/trips?by=${by}&from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`).catch(() => null);
  const [day, week, month] = await Promise.all([q('day'), q('week'), q('month')]);
  return { day, week, month };
}

function tripsTable(vin, t) {
  if (!t.day) return el('p', { text: 'Trips: out of reach.' });
  const per = (x) => (x && x.periods.length ? (x.trips / x.periods.length).toFixed(1) : '0');
  const row = (label, x) => el('tr', { 'data-by': label },
    el('th', { scope: 'row', text: label }), el('td', { class: 'trips', text: x ? fmt.int(x.trips) : '–' }),
    el('td', { text: x ? String(x.periods.length) : '–' }), el('td', { text: per(x) }),
    el('td', { text: x && x.periods.length ? `${x.periods[x.periods.length - 1].start}: ${x.periods[x.periods.length - 1].trips}` : '–' }));
  return el('table', { class: 'trips-table', 'data-vin': vin },
    el('caption', { text: `Trips in the 92 days to ${t.day.to.slice(0, 10)} (${t.day.tz}; a stop over ${t.day.gap_s / 60} min or the engine off ends a trip)` }),
    el('thead', {}, el('tr', {}, ['Per', 'Trips', 'Periods with trips', 'Trips per period', 'Latest'].map((h) => el('th', { scope: 'col', text: h })))),
    el('tbody', {}, row('day', t.day), row('week', t.week), row('month', t.month)));
}

async function vehiclesView() {
  const v = view();
  const mapDiv = el('div', { id: 'fleet-map' });
  show(v, el('h1', { text: 'My vehicles' }), mapDiv, el('div', { id: 'cards', class: 'cards' }));
  if (!vehicles.length) return show(document.getElementById('cards'), el('p', { text: 'No vehicle is bound to your account.' }));
  const map = await baseMap(mapDiv, 'Where my vehicles are');
  const cards = [], bounds = [];
  for (const vin of vehicles) {
    const [pos, cond, reps] = await Promise.all([
      api(`/v1/vehicles/${vin}/position`).catch(() => null),
      api(`/v1/vehicles/${vin}/condition?days=365`).catch(() => null),
      reports(vin).catch(() => []),
    ]);
    const trips = await tripsBy(vin, reps);
    if (pos) {
      L.circleMarker([pos.lat, pos.lon], { radius: 8, color: '#1c4f82', fillOpacity: 0.9, className: 'vehicle-pos' })
        .bindTooltip(vin).addTo(map);
      bounds.push([pos.lat, pos.lon]);
    }
    const km = reps.reduce((n, r) => n + r.distance_km, 0), secs = reps.reduce((n, r) => n + r.driving_s, 0);
    const faults = cond ? cond.faults.filter((f) => f.active).map((f) => f.code) : [];
    cards.push(el('article', { class: 'card vehicle', 'data-vin': vin },
      el('h2', { text: vin }),
      pos ? el('p', { text: `Last seen ${fmt.time(pos.time)} at ${pos.lat.toFixed(4)}, ${pos.lon.toFixed(4)}, ${pos.speed_kmh.toFixed(0)} km/h, engine ${pos.engine_on ? 'on' : 'off'}.` })
          : el('p', { text: 'No position yet.' }),
      el('h3', { text: 'Box health' }),
      el('dl', { class: 'kv' },
        el('dt', { text: 'Battery' }), el('dd', { text: cond && cond.battery_v ? cond.battery_v.value.toFixed(1) + ' V' : '–' }),
        el('dt', { text: 'Fuel' }), el('dd', { text: cond && cond.fuel_pct ? cond.fuel_pct.value.toFixed(0) + ' %' : '–' }),
        el('dt', { text: 'Coolant' }), el('dd', { text: cond && cond.coolant_c ? cond.coolant_c.value.toFixed(0) + ' °C' : '–' }),
        el('dt', { text: 'Engine' }), el('dd', { text: cond && cond.engine_on !== undefined ? (cond.engine_on ? 'on' : 'off') : '–' }),
        el('dt', { text: 'Fault codes' }), el('dd', { class: faults.length ? 'warn' : '', text: faults.length ? faults.join(', ') : 'none active' })),
      el('h3', { text: 'Usage' }),
      el('p', { class: 'usage', text: `${fmt.km(km)} over ${reps.length} day(s), ${fmt.dur(secs)} driving.` }),
      tripsTable(vin, trips),
      el('ul', { class: 'days' }, reps.slice().reverse().map((r) => el('li', {},
        el('a', { href: `#/day/${vin}/${r.date}`, text: `${r.date}: ${fmt.km(r.distance_km)}, score ${r.score.toFixed(1)}, ${r.points} points` })))),
      el('p', {}, el('a', { href: `#/points/${vin}`, text: 'Points and receipts' }))));
  }
  show(document.getElementById('cards'), cards);
  if (bounds.length) map.fitBounds(bounds, { padding: [40, 40], maxZoom: 12 });
}

// ---- a day ----

async function dayView(vin, date) {
  const r = (await reports(vin)).find((x) => x.date === date);
  if (!r) throw new Error(`no report of ${vin} on ${date}`);
  const q = `from=${encodeURIComponent(r.window_start)}&to=${encodeURIComponent(r.window_end)}`;
  const [track, marks] = await Promise.all([
    api(`/v1/vehicles/${vin}/track?${q}&max_points=3000&limit=3000`),
    api(`/v1/vehicles/${vin}/marks?${q}`),
  ]);
  const mapDiv = el('div', { id: 'day-map' });
  const counts = {};
  marks.marks.forEach((m) => { counts[m.kind] = (counts[m.kind] || 0) + 1; });
  show(view(),
    el('p', {}, el('a', { href: '#/', text: '← My vehicles' })),
    el('h1', { text: `${vin} on ${date}` }),
    el('dl', { class: 'kv summary' },
      el('dt', { text: 'Score' }), el('dd', { id: 'day-score', text: r.score.toFixed(1) }),
      el('dt', { text: 'Distance' }), el('dd', { text: fmt.km(r.distance_km) }),
      el('dt', { text: 'Driving' }), el('dd', { text: fmt.dur(r.driving_s) }),
      el('dt', { text: 'Points' }), el('dd', { text: fmt.int(r.points) })),
    mapDiv,
    el('p', { class: 'legend' }, 'Track coloured by speed: ',
      el('span', { class: 'sw s1', text: '< 20' }), el('span', { class: 'sw s2', text: '< 50' }),
      el('span', { class: 'sw s3', text: '< 90' }), el('span', { class: 'sw s4', text: '≥ 90 km/h' }),
      ' Marks: ', el('span', { class: 'sw brake', text: 'brake' }), el('span', { class: 'sw accel', text: 'acceleration' }),
      el('span', { class: 'sw corner', text: 'corner' }), el('span', { class: 'sw speeding', text: 'speeding' })),
    el('h2', { text: 'Why this score' }),
    el('ul', { id: 'explain' }, explain(r).map((s) => el('li', { text: s }))),
    el('h2', { text: 'Where it happened' }),
    el('p', { text: `${marks.marks.length} place(s) where a sample crossed a threshold of rules ${marks.rules}: ` +
      Object.entries(counts).map(([k, n]) => `${n} ${markWords[k][n === 1 ? 0 : 1]}`).join(', ') }),
    el('ol', { id: 'marks' }, marks.marks.map((m) => el('li', { class: 'mark-item', 'data-kind': m.kind,
      text: `${fmt.time(m.start)}: ${markWords[m.kind][0]}, ${m.kind === 'speeding' ? `${m.peak} km/h over ${m.limit_kmh}` : `${m.peak} g`} at ${m.speed_kmh.toFixed(0)} km/h` }))));
  const pts = await drawDay(mapDiv, `Track of ${vin} on ${date}`, track, marks);
  chart(view(), pts);
}

function chart(container, pts) {
  if (!window.uPlot || pts.length < 2) return;
  const div = el('div', { class: 'chart', role: 'img', 'aria-label': 'Speed over the day' });
  container.append(el('h2', { text: 'Speed' }), div);
  const xs = pts.map((p) => Date.parse(p.time) / 1000), ys = pts.map((p) => p.speed_kmh);
  new uPlot({ width: Math.min(container.clientWidth || 600, 900), height: 180, series: [{}, { label: 'km/h', stroke: '#1c4f82' }],
    axes: [{}, { label: 'km/h' }] }, [xs, ys], div);
}

// ---- points and receipts ----

async function pointsView(vin) {
  if (!vin) return show(view(), el('p', { text: 'No vehicle, no points.' }));
  const [p, acct] = await Promise.all([api(`/v1/vehicles/${vin}/points?limit=100`),
    api(`/v1/accounts/${me.id}/entries?limit=100`).catch(() => ({ entries: [] }))]);
  const b = p.balance || {};
  const rows = (list, from) => list.map((e) => el('tr', { 'data-kind': e.kind },
    el('td', { text: e.leaf_index }), el('td', { text: e.kind }), el('td', { text: e.date || e.block_time.slice(0, 10) }),
    el('td', { class: e.delta < 0 ? 'neg' : 'pos', text: (e.delta > 0 ? '+' : '') + fmt.int(e.delta) }),
    el('td', {}, el('a', { href: `#/receipt/${from}/${e.leaf_index}`, class: 'receipt-link', text: 'Receipt' }))));
  show(view(),
    el('h1', { text: 'Points' }),
    el('nav', { class: 'row', 'aria-label': 'Vehicles' }, vehicles.map((v) => el('a', { href: `#/points/${v}`, class: v === vin ? 'current' : '', text: v }))),
    el('dl', { class: 'kv summary' },
      el('dt', { text: 'Balance' }), el('dd', { id: 'balance', text: fmt.int(b.balance || 0) }),
      el('dt', { text: 'Available' }), el('dd', { id: 'available', text: fmt.int(b.available || 0) }),
      el('dt', { text: 'Reserved' }), el('dd', { text: fmt.int(b.reserved || 0) }),
      el('dt', { text: `Earned by ${vin}` }), el('dd', { text: fmt.int(p.vehicle_points_total || 0) })),
    el('h2', { text: 'History' }),
    el('table', { id: 'history' },
      el('caption', { text: `Ledger entries of ${vin}, newest first` }),
      el('thead', {}, el('tr', {}, ['Leaf', 'Kind', 'Date', 'Points', 'Receipt'].map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, rows(p.entries, vin))),
    el('table', { id: 'account-history' },
      el('caption', { text: `Entries of account ${me.id} (redemptions, adjustments, transfers out), newest first` }),
      el('thead', {}, el('tr', {}, ['Leaf', 'Kind', 'Date', 'Points', 'Receipt'].map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, rows(acct.entries, 'account'))));
}

async function receiptView(vin, leaf) {
  const idx = Number(leaf);
  const p = vin === 'account' ? await api(`/v1/accounts/${me.id}/entries?limit=500`) : await api(`/v1/vehicles/${vin}/points?limit=500`);
  const e = p.entries.find((x) => x.leaf_index === idx);
  if (!e) throw new Error(`leaf ${leaf} is not one of ${vin === 'account' ? me.id : vin}'s entries`);
  const out = el('div', { id: 'receipt-verdict' }, el('p', { text: 'Checking in your browser…' }));
  show(view(),
    el('p', {}, el('a', { href: `#/points/${vin === 'account' ? vehicles[0] : vin}`, text: '← Points' })),
    el('h1', { text: `Receipt: leaf ${idx}` }),
    el('dl', { class: 'kv' },
      el('dt', { text: 'Entry' }), el('dd', { text: e.id }),
      el('dt', { text: 'Kind' }), el('dd', { text: e.kind }),
      el('dt', { text: 'Points' }), el('dd', { text: fmt.int(e.delta) }),
      el('dt', { text: 'Block' }), el('dd', {}, el('a', { href: `/explorer#/block/${e.block_height}`, text: String(e.block_height) })),
      el('dt', { text: 'Leaf hash' }), el('dd', { class: 'hash', text: e.leaf_hash })),
    out);
  try {
    const r = await checkLeaf(idx, b64ToBytes(e.entry), e.leaf_hash);
    show(out, verdict(true, 'Verified', [
      `The entry's bytes hash to leaf ${r.leaf}.`,
      `The inclusion proof (${r.proof.length} hashes) leads to the root ${r.cp.rootHex} of ${r.cp.size} entries.`,
      r.signature === 'verified' ? `That checkpoint carries a valid Ed25519 signature of ${r.cp.origin}.`
        : 'This browser has no WebCrypto Ed25519: the checkpoint signature was NOT checked here.',
      r.cosigners.length ? `Cosigned by ${r.cosigners.join(', ')} (not checked here).` : 'No witness cosignature on this checkpoint.',
      `Checkpoint history: ${r.witnessed}.`]));
  } catch (err) {
    show(out, verdict(false, 'Verification FAILED', [err.message, 'Do not trust this entry or this ledger until this is explained.']));
  }
}

// ---- redeem and transfer ----

async function redeemView() {
  const owner = me.id;
  const [cat, bal] = await Promise.all([api('/v1/catalog'), api(`/v1/accounts/${owner}/balance`)]);
  const result = el('div', { id: 'redeem-result', 'aria-live': 'polite' });
  const balance = el('dd', { id: 'redeem-balance', text: fmt.int(bal.available) });
  show(view(),
    el('h1', { text: 'Redeem' }),
    el('dl', { class: 'kv summary' }, el('dt', { text: 'Available points' }), balance),
    el('ul', { class: 'catalogue' }, cat.items.map((it) => el('li', { class: 'card item' },
      el('h2', { text: it.title }),
      el('p', { text: `${fmt.int(it.price_points)} points from ${it.partner}${it.left >= 0 ? `, ${it.left} left` : ''}` }),
      el('button', { type: 'button', class: 'redeem', 'data-item': it.item_id, onclick: () => confirmRedeem(it, result, balance) }, `Redeem ${it.title}`)))),
    result);
}

function confirmRedeem(it, result, balance) {
  const yes = el('button', { type: 'button', id: 'confirm-redeem' }, 'Confirm');
  const no = el('button', { type: 'button', class: 'secondary' }, 'Cancel');
  show(result, el('div', { class: 'card confirm', role: 'dialog', 'aria-label': 'Confirm the redemption' },
    el('p', { text: `Spend ${fmt.int(it.price_points)} points on “${it.title}” from ${it.partner}?` }), yes, ' ', no));
  no.addEventListener('click', () => show(result));
  yes.focus();
  yes.addEventListener('click', async () => {
    yes.disabled = true;
    try {
      const key = crypto.randomUUID();
      const red = await api('/v1/redemptions', { method: 'POST', headers: { 'Idempotency-Key': key },
        body: { partner: it.partner, item_id: it.item_id, quantity: 1 } });
      show(result, el('p', { class: 'card', id: 'redeem-status', 'data-status': red.status, text: `Redemption ${red.id}: ${red.status}${red.reason ? ' (' + red.reason + ')' : ''}.` }));
      const bal = await api(`/v1/accounts/${me.id}/balance`);
      balance.textContent = fmt.int(bal.available);
    } catch (e) {
      show(result, el('p', { class: 'error', role: 'alert', text: 'Redemption refused: ' + e.message }));
    }
  });
}

async function transferView() {
  if (!document.body.dataset.transfers) return show(view(), el('p', { text: 'Transfers are not offered by this server.' }));
  const result = el('div', { id: 'transfer-result', 'aria-live': 'polite' });
  const bal = await api(`/v1/accounts/${me.id}/balance`);
  const balance = el('dd', { id: 'transfer-balance', text: fmt.int(bal.available) });
  const form = el('form', { id: 'transfer-form' },
    el('label', { for: 'to-owner', text: 'To owner' }), el('input', { id: 'to-owner', name: 'to', required: true, placeholder: 'owner-00001' }),
    el('label', { for: 'amount', text: 'Points' }), el('input', { id: 'amount', name: 'amount', type: 'number', min: 1, required: true }),
    el('button', { type: 'submit' }, 'Transfer'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const to = form.to.value.trim(), amount = Number(form.amount.value);
    const yes = el('button', { type: 'button', id: 'confirm-transfer' }, 'Confirm');
    const no = el('button', { type: 'button', class: 'secondary' }, 'Cancel');
    show(result, el('div', { class: 'card confirm', role: 'dialog', 'aria-label': 'Confirm the transfer' },
      el('p', { text: `Send ${fmt.int(amount)} points to ${to}?` }), yes, ' ', no));
    no.addEventListener('click', () => show(result));
    yes.focus();
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      try {
        // The id makes the request idempotent (32 lowercase hex digits, docs/economy.md).
        const id = crypto.randomUUID().replaceAll('-', '');
        const t = await api('/v1/transfers', { method: 'POST', body: { id, debit_account: me.id, credit_account: to, amount } });
        show(result, el('p', { class: 'card', id: 'transfer-status', 'data-status': t.status,
          text: `Transfer ${t.id}: ${t.status}${t.reason ? ' (' + t.reason + ')' : ''}.` }));
      } catch (e) {
        const st = (e.data && e.data.status) || 'REFUSED';
        show(result, el('p', { class: 'error', role: 'alert', id: 'transfer-status', 'data-status': st, text: `Transfer ${st.toLowerCase()}: ${e.message}` }));
      }
      balance.textContent = fmt.int((await api(`/v1/accounts/${me.id}/balance`)).available);
    });
  });
  show(view(), el('h1', { text: 'Transfer points' }),
    el('dl', { class: 'kv summary' }, el('dt', { text: 'Available points' }), balance), form, result);
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot); else boot();
