// Shared by the three faces: DOM helpers, API calls, and the ledger checks
// done in the browser: RFC 6962 leaf and node hashes (WebCrypto SHA-256),
// inclusion and consistency proofs (the verification algorithms of
// RFC 9162 sections 2.1.3.2 and 2.1.4.2), and the C2SP signed checkpoint
// (Ed25519 over the note text, WebCrypto). docs/web.md.

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function show(container, ...children) {
  container.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

export function status(msg, kind = '') {
  const s = document.getElementById('status');
  if (!s) return;
  s.textContent = msg;
  s.className = kind;
}

export class APIError extends Error {
  constructor(code, msg, data) { super(msg); this.code = code; this.data = data; }
}

// api fetches a JSON route of this origin (the session cookie rides along;
// a bearer token when given).
export async function api(path, { method = 'GET', body, token, headers = {} } = {}) {
  const h = { Accept: 'application/json', ...headers };
  if (token) h.Authorization = 'Bearer ' + token;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  const resp = await fetch(path, { method, headers: h, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!resp.ok) throw new APIError(resp.status, (data && (data.error || data.reason)) || resp.statusText || String(resp.status), data);
  return data;
}

export async function text(path) {
  const resp = await fetch(path, { credentials: 'same-origin' });
  if (!resp.ok) throw new APIError(resp.status, await resp.text());
  return resp.text();
}

export const fmt = {
  int: (n) => Number(n).toLocaleString('en-US'),
  km: (n) => Number(n).toFixed(1) + ' km',
  dur: (s) => { s = Math.round(s); const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60); return h ? `${h} h ${m} min` : `${m} min`; },
  time: (t) => new Date(t).toISOString().replace('T', ' ').slice(0, 19) + ' UTC',
  short: (h) => (h || '').slice(0, 12) + '…',
};

// ---- bytes and hashes ----

export function hexToBytes(h) {
  if (typeof h !== 'string' || h.length % 2 || /[^0-9a-f]/i.test(h)) throw new Error('not hex: ' + h);
  const b = new Uint8Array(h.length / 2);
  for (let i = 0; i < b.length; i++) b[i] = parseInt(h.substr(2 * i, 2), 16);
  return b;
}
export function bytesToHex(b) { return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(''); }
export function b64ToBytes(s) { const bin = atob(s); return Uint8Array.from(bin, (c) => c.charCodeAt(0)); }
export function bytesToB64(b) { return btoa(String.fromCharCode(...b)); }
function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}
async function sha256(b) { return new Uint8Array(await crypto.subtle.digest('SHA-256', b)); }
export async function leafHash(entry) { return sha256(concat(new Uint8Array([0]), entry)); }
async function nodeHash(l, r) { return sha256(concat(new Uint8Array([1]), l, r)); }
function eq(a, b) { return a.length === b.length && a.every((x, i) => x === b[i]); }

// verifyInclusion: RFC 9162 2.1.3.2. Throws with the reason on failure.
export async function verifyInclusion(index, size, leaf, proof, root) {
  let fn = BigInt(index), sn = BigInt(size) - 1n;
  if (fn > sn) throw new Error(`leaf ${index} is not in a tree of ${size}`);
  let r = leaf;
  for (const hx of proof) {
    const p = hexToBytes(hx);
    if (sn === 0n) throw new Error('inclusion proof too long');
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      if ((fn & 1n) === 0n) while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n; sn >>= 1n;
  }
  if (sn !== 0n) throw new Error('inclusion proof too short');
  if (!eq(r, root)) throw new Error(`computed root ${bytesToHex(r)} is not the checkpoint's ${bytesToHex(root)}`);
}

// verifyConsistency: RFC 9162 2.1.4.2. Throws with the reason on failure.
export async function verifyConsistency(first, second, proof, root1, root2) {
  first = BigInt(first); second = BigInt(second);
  if (first > second) throw new Error(`size ${first} is beyond ${second}: the log shrank`);
  if (first === second) {
    if (proof.length) throw new Error('non-empty proof between equal sizes');
    if (!eq(root1, root2)) throw new Error('two roots for the same size: the log forked');
    return;
  }
  if (first === 0n) return; // the empty tree is a prefix of every tree
  let path = proof.map(hexToBytes);
  if (!path.length) throw new Error('empty consistency proof');
  if ((first & (first - 1n)) === 0n) path = [root1, ...path];
  let fn = first - 1n, sn = second - 1n;
  while ((fn & 1n) === 1n) { fn >>= 1n; sn >>= 1n; }
  let fr = path[0], sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) throw new Error('consistency proof too long');
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr); sr = await nodeHash(c, sr);
      if ((fn & 1n) === 0n) while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n; sn >>= 1n;
  }
  if (sn !== 0n) throw new Error('consistency proof too short');
  if (!eq(fr, root1)) throw new Error('the older root does not follow from the proof');
  if (!eq(sr, root2)) throw new Error('the newer root does not follow from the proof');
}

// ---- checkpoints ----

// parseCheckpoint splits a C2SP signed note: body (origin, size, root,
// extension lines) and signature lines "— <name> <base64>".
export function parseCheckpoint(t) {
  const cut = t.indexOf('\n\n');
  if (cut < 0) throw new Error('checkpoint: no signature block');
  const body = t.slice(0, cut + 1);
  const lines = body.split('\n');
  if (lines.length < 4) throw new Error('checkpoint: short body');
  const size = lines[1];
  if (!/^(0|[1-9][0-9]*)$/.test(size)) throw new Error('checkpoint: bad size ' + size);
  const root = b64ToBytes(lines[2]);
  if (root.length !== 32) throw new Error('checkpoint: root is not 32 bytes');
  const sigs = [];
  for (const line of t.slice(cut + 2).split('\n')) {
    if (!line) continue;
    const m = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!m) throw new Error('checkpoint: bad signature line');
    const raw = b64ToBytes(m[2]);
    if (raw.length < 5) throw new Error('checkpoint: short signature');
    sigs.push({ name: m[1], keyHash: bytesToHex(raw.slice(0, 4)), sig: raw.slice(4) });
  }
  return { origin: lines[0], size: Number(size), root, rootHex: bytesToHex(root), body, sigs, text: t };
}

export function parseVerifierKey(vkey) {
  // "<name>+<8 hex>+<base64>": the name has no '+', the base64 may.
  const i = vkey.indexOf('+'), j = vkey.indexOf('+', i + 1);
  const name = vkey.slice(0, i), hash = vkey.slice(i + 1, j), b64 = vkey.slice(j + 1);
  if (i < 0 || j < 0) throw new Error('bad verifier key ' + vkey);
  const raw = b64ToBytes(b64 || '');
  if (!name || !/^[0-9a-f]{8}$/.test(hash || '') || raw.length !== 33 || raw[0] !== 1) throw new Error('bad verifier key ' + vkey);
  return { name, keyHash: hash, pub: raw.slice(1) };
}

// ed25519Available reports whether WebCrypto verifies Ed25519 here.
export async function ed25519Available() {
  try {
    await crypto.subtle.importKey('raw', new Uint8Array(32), { name: 'Ed25519' }, false, ['verify']);
    return true;
  } catch { return false; }
}

// verifyCheckpoint checks the ledger's signature on a checkpoint with the
// verifier key. Returns {cp, signature: 'verified' | 'unavailable', cosigners}.
export async function verifyCheckpoint(t, vkey) {
  const cp = parseCheckpoint(t);
  const k = parseVerifierKey(vkey);
  if (cp.origin !== k.name) throw new Error(`checkpoint of ${cp.origin}, want ${k.name}`);
  const mine = cp.sigs.find((s) => s.name === k.name && s.keyHash === k.keyHash);
  if (!mine) throw new Error('checkpoint: no signature by the ledger key');
  const cosigners = cp.sigs.filter((s) => s !== mine).map((s) => s.name);
  if (!(await ed25519Available())) return { cp, signature: 'unavailable', cosigners };
  const key = await crypto.subtle.importKey('raw', k.pub, { name: 'Ed25519' }, false, ['verify']);
  const ok = await crypto.subtle.verify({ name: 'Ed25519' }, key, mine.sig, new TextEncoder().encode(cp.body));
  if (!ok) throw new Error('checkpoint: the ledger signature does not verify');
  return { cp, signature: 'verified', cosigners };
}

// ---- witness cosignatures (C2SP tlog-cosignature v1) and the policy ----

const te = new TextEncoder();

// parsePolicy parses a witness policy (docs/ledger.md, "The witness
// policy"): log, witness, group and quorum lines; '#' starts a comment.
// Checks each witness key's id: SHA-256(name || "\n" || 0x04 || key)[:4].
export async function parsePolicy(t) {
  const p = { log: '', witnesses: [], comps: new Map(), quorum: null };
  const kw = new Set(['log', 'witness', 'group', 'quorum', 'any', 'all', 'none']);
  const name = (n) => {
    if (!n || kw.has(n) || p.comps.has(n)) throw new Error(`policy: bad or duplicate name ${n}`);
    return n;
  };
  for (let line of t.split('\n')) {
    const h = line.indexOf('#');
    if (h >= 0) line = line.slice(0, h);
    const f = line.trim().split(/[ \t]+/).filter(Boolean);
    if (!f.length) continue;
    switch (f[0]) {
      case 'log': p.log = f[1] || ''; break;
      case 'witness': {
        if (f.length < 3) throw new Error('policy: short witness line');
        const n = name(f[1]);
        const i = f[2].indexOf('+'), j = f[2].indexOf('+', i + 1);
        if (i < 0 || j < 0) throw new Error(`policy: bad key of ${n}`);
        const keyName = f[2].slice(0, i), keyHash = f[2].slice(i + 1, j), raw = b64ToBytes(f[2].slice(j + 1));
        if (raw.length !== 33 || raw[0] !== 4) throw new Error(`policy: ${n}'s key is not a cosignature v1 Ed25519 key`);
        const id = bytesToHex((await sha256(concat(te.encode(keyName + '\n'), raw))).slice(0, 4));
        if (id !== keyHash) throw new Error(`policy: ${n}'s key id ${keyHash} is not its key's (${id})`);
        const w = { name: n, keyName, keyHash, pub: raw.slice(1) };
        p.witnesses.push(w);
        p.comps.set(n, { w });
        break;
      }
      case 'group': {
        if (f.length < 4) throw new Error('policy: short group line');
        const n = name(f[1]), members = f.slice(3);
        for (const m of members) if (!p.comps.has(m)) throw new Error(`policy: group ${n} names ${m}, not defined above it`);
        const k = f[2] === 'any' ? 1 : f[2] === 'all' ? members.length : Number(f[2]);
        if (!Number.isInteger(k) || k < 1 || k > members.length) throw new Error(`policy: group ${n}: bad threshold ${f[2]}`);
        p.comps.set(n, { k, members });
        break;
      }
      case 'quorum':
        if (f[1] !== 'none' && !p.comps.has(f[1])) throw new Error(`policy: quorum ${f[1]} is not defined`);
        p.quorum = f[1];
        break;
      default: throw new Error(`policy: unknown statement ${f[0]}`);
    }
  }
  if (!p.quorum) throw new Error('policy: no quorum line');
  return p;
}

// satisfied: whether component n of the policy is met by the set of
// witness names whose cosignatures verified.
function satisfied(p, n, ok) {
  const c = p.comps.get(n);
  if (c.w) return ok.has(n);
  return c.members.filter((m) => satisfied(p, m, ok)).length >= c.k;
}

// verifyCosignatures checks every cosignature of a parsed checkpoint
// under the policy: a signature line whose key name and id are a
// witness's must be 8 bytes of timestamp (big-endian Unix seconds) and an
// Ed25519 signature over "cosignature/v1\ntime <t>\n" || body, else it
// fails; lines of other keys are ignored. Returns {witnesses (names that
// verified, policy order), quorum, k, n, met, times}.
export async function verifyCosignatures(cp, p) {
  const ok = new Set(), times = {};
  for (const s of cp.sigs) {
    const w = p.witnesses.find((x) => x.keyName === s.name && x.keyHash === s.keyHash);
    if (!w) continue;
    if (s.sig.length !== 8 + 64) throw new Error(`the cosignature of ${w.name} (${s.name}) is malformed`);
    const t = new DataView(s.sig.buffer, s.sig.byteOffset, 8).getBigUint64(0);
    const key = await crypto.subtle.importKey('raw', w.pub, { name: 'Ed25519' }, false, ['verify']);
    const good = await crypto.subtle.verify({ name: 'Ed25519' }, key, s.sig.slice(8), te.encode(`cosignature/v1\ntime ${t}\n` + cp.body));
    if (!good) throw new Error(`the cosignature of ${w.name} (${s.name}) does not verify: forged or altered`);
    ok.add(w.name);
    times[w.name] = Number(t);
  }
  const q = p.quorum, c = q === 'none' ? null : p.comps.get(q);
  const k = !c ? 0 : c.w ? 1 : c.k, n = !c ? 0 : c.w ? 1 : c.members.length;
  const met = q === 'none' || satisfied(p, q, ok);
  const flat = !c || c.w || c.members.every((m) => p.comps.get(m).w);
  const structure = flat ? ` ${k} of ${n}` : ': ' + quorumStructure(p, q, ok);
  return { witnesses: p.witnesses.map((w) => w.name).filter((x) => ok.has(x)), quorum: q, k, n, met, times, structure };
}

// quorumStructure spells out a nested quorum with who met each part
// (docs/web.md): a witness is its name ("m3 missing" without its
// cosignature); a group of one member is that member; a group of all its
// members joins them with "and"; any other group is "<members met> of
// {<members>} (k of n)". So the embedded policy (2 of w1, w2, w3 and the
// mirror m3) reads "w1, w2 of {w1, w2, w3} (2 of 3) and m3".
function quorumStructure(p, name, ok) {
  const c = p.comps.get(name);
  if (c.w) return ok.has(name) ? name : `${name} missing`;
  if (c.members.length === 1) return quorumStructure(p, c.members[0], ok);
  if (c.k === c.members.length) return c.members.map((m) => quorumStructure(p, m, ok)).join(' and ');
  const met = c.members.filter((m) => satisfied(p, m, ok));
  return `${met.join(', ') || 'none'} of {${c.members.join(', ')}} (${c.k} of ${c.members.length})`;
}

// cosignedSentence: "cosigned by w1, w2 (quorum 2 of 3)" for a group of
// witnesses, else the structure: "cosigned by w1, w2, m3 (quorum: w1, w2
// of {w1, w2, w3} (2 of 3) and m3)".
export function cosignedSentence(c) {
  if (c.quorum === 'none') return 'the witness policy needs no cosignature';
  return `cosigned by ${c.witnesses.join(', ') || 'no witness'} (quorum${c.structure || ` ${c.k} of ${c.n}`})`;
}

// checkQuorum fetches the witness policy (GET /ledger/policy) and checks
// the checkpoint's cosignatures under it; a quorum not met throws. Without
// a policy (404) it returns null: the server publishes without witnesses.
export async function checkQuorum(cp, vkey) {
  const resp = await fetch('/ledger/policy', { credentials: 'same-origin' });
  if (resp.status === 404) return null;
  if (!resp.ok) throw new APIError(resp.status, 'witness policy: ' + (await resp.text()));
  const p = await parsePolicy(await resp.text());
  if (p.log && p.log !== vkey) throw new Error(`the witness policy is for log ${p.log}, not ${vkey}`);
  if (!(await ed25519Available())) return { unavailable: true };
  const c = await verifyCosignatures(cp, p);
  if (!c.met) throw new Error(`witness quorum NOT met: ${cosignedSentence(c)}`);
  return c;
}

// quorumWords says what checkQuorum found, for a verdict's list.
export function quorumWords(q) {
  if (q === null) return 'No witness policy is served: the checkpoint is the ledger\'s word alone.';
  if (q.unavailable) return 'This browser has no WebCrypto Ed25519: the witness cosignatures were NOT checked here.';
  return `Witnesses: ${cosignedSentence(q)}; each cosignature verified in this browser.`;
}

// ---- pseudonyms: the owner's opening (docs/ledger.md, "Check your own credit") ----

// pseudonymOf = "p1:" || hex(HMAC-SHA256(key, "minecart/" || kind || "/v1" || 0x00 || id)[0:16]).
export async function pseudonymOf(keyHex, kind, id) {
  const key = await crypto.subtle.importKey('raw', hexToBytes(keyHex), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const mac = new Uint8Array(await crypto.subtle.sign('HMAC', key, concat(te.encode(`minecart/${kind}/v1`), new Uint8Array([0]), te.encode(id))));
  return 'p1:' + bytesToHex(mac.slice(0, 16));
}

// entryNames decodes the identity fields of a canonical entry
// (services/ledger/entry.go): version 1, kind, id, then per kind the
// leading strings (4-byte big-endian length + bytes).
export function entryNames(b) {
  let o = 2;
  const str = () => {
    if (o + 4 > b.length) throw new Error('entry: short');
    const n = new DataView(b.buffer, b.byteOffset + o, 4).getUint32(0);
    if (o + 4 + n > b.length) throw new Error('entry: short');
    const s = new TextDecoder().decode(b.slice(o + 4, o + 4 + n));
    o += 4 + n;
    return s;
  };
  if (b.length < 2 || b[0] !== 1) throw new Error('entry: unknown version');
  const kind = b[1], id = str(), out = { kind, id, vehicle: '', account: '', counter: '' };
  switch (kind) {
    case 1: case 4: out.vehicle = str(); break;
    case 2: case 3: out.account = str(); out.vehicle = str(); break;
    case 5: out.account = str(); out.counter = str(); break;
    case 7: out.vehicle = str(); out.account = str(); break;
    case 8: break; // an erasure names a destroyed key: no opening
  }
  return out;
}

// checkOpening proves the entry is the opening's identity's: the
// pseudonym recomputed from the key and the id must be the opening's, and
// the entry's bytes must name it (a vehicle's in vehicle_id, an account's
// in account or counter_account). Returns a sentence; throws otherwise.
export async function checkOpening(o, entryBytes) {
  if (!o || !o.key || !o.pseudonym) throw new Error('no opening: this entry cannot be linked to you');
  const kind = o.kind, id = kind === 'vehicle' ? o.vehicle_id : o.account;
  if ((kind !== 'vehicle' && kind !== 'account') || !id) throw new Error(`opening of kind ${kind} without an id`);
  const got = await pseudonymOf(o.key, kind, id);
  if (got !== o.pseudonym) throw new Error(`the opening does not open: HMAC of ${id} under its key is ${got}, not ${o.pseudonym}`);
  const e = entryNames(entryBytes);
  const names = kind === 'vehicle' ? [e.vehicle] : [e.account, e.counter];
  if (!names.includes(got)) throw new Error(`this entry names ${[e.vehicle, e.account, e.counter].filter(Boolean).join(', ') || 'no one'}, not your ${kind} ${id} (${got})`);
  return `this ${kind === 'vehicle' && e.kind === 1 ? 'credit' : 'entry'} names your ${kind} ${id} as ${got} (HMAC-SHA256 recomputed here)`;
}

// ledgerKey is the page's verifier key, pinned in localStorage on first
// use: a page that later hands another key fails loudly.
export function ledgerKey() {
  const vkey = document.body.dataset.vkey;
  const pinned = localStorage.getItem('minecart.vkey');
  if (pinned && pinned !== vkey) throw new Error(`the ledger key changed: pinned ${pinned}, the page says ${vkey}`);
  if (!pinned) localStorage.setItem('minecart.vkey', vkey);
  return vkey;
}

// witness: the browser as a witness of the book. It keeps the last
// checkpoint it verified and checks every newer one is consistent with it
// (a consistency proof from the ledger's API, checked here), then keeps
// the newer one. Returns a sentence saying what was checked.
export async function witness(cp) {
  const seen = JSON.parse(localStorage.getItem('minecart.checkpoint') || 'null');
  let said = 'first checkpoint seen by this browser: kept for the next visit';
  if (seen) {
    const old = hexToBytes(seen.root);
    if (seen.size > cp.size) throw new Error(`the ledger shows ${cp.size} entries, this browser saw ${seen.size} before: the book shrank`);
    if (seen.size === cp.size) {
      if (seen.root !== cp.rootHex) throw new Error(`two roots for ${cp.size} entries: the book forked`);
      said = `same checkpoint as last seen (${cp.size} entries)`;
    } else {
      const c = await api(`/v1/ledger/consistency?first=${seen.size}&second=${cp.size}`);
      if (c.root2 !== cp.rootHex) throw new Error('the consistency proof is for another root');
      await verifyConsistency(seen.size, cp.size, c.proof, old, cp.root);
      said = `consistent with the checkpoint this browser saw before (${seen.size} → ${cp.size} entries)`;
    }
  }
  localStorage.setItem('minecart.checkpoint', JSON.stringify({ size: cp.size, root: cp.rootHex }));
  return said;
}

// checkLeaf proves an entry's bytes are leaf index of the book now: the
// signed checkpoint, the inclusion proof at its size, the witness quorum's
// cosignatures under the served policy, the browser's own witness check.
// Returns {cp, signature, leaf, witnessed}; throws on any failure.
export async function checkLeaf(index, entryBytes, expectLeafHash) {
  const vkey = ledgerKey();
  const { cp, signature, cosigners } = await verifyCheckpoint(await text('/ledger/checkpoint'), vkey);
  const leaf = await leafHash(entryBytes);
  if (expectLeafHash && bytesToHex(leaf) !== expectLeafHash) throw new Error('the entry bytes do not hash to the listed leaf hash');
  const pr = await api(`/v1/ledger/leaves/${index}/proof?tree_size=${cp.size}`);
  if (pr.leaf_hash !== bytesToHex(leaf)) throw new Error(`the ledger's leaf ${index} is ${pr.leaf_hash}, these bytes hash to ${bytesToHex(leaf)}`);
  await verifyInclusion(index, cp.size, leaf, pr.proof, cp.root);
  const quorum = await checkQuorum(cp, vkey);
  const witnessed = await witness(cp);
  return { cp, signature, cosigners, quorum, leaf: bytesToHex(leaf), proof: pr.proof, witnessed };
}

// verdict renders a check's outcome: a visible "verified" or a loud failure.
export function verdict(ok, title, lines) {
  return el('div', { class: ok ? 'verdict ok' : 'verdict fail', role: ok ? 'status' : 'alert', 'data-verdict': ok ? 'verified' : 'failed' },
    el('strong', { text: ok ? '✔ ' + title : '✖ ' + title }),
    el('ul', {}, lines.map((l) => el('li', { text: l }))));
}

// ---- maps ----

let geo = null;
async function outlines() {
  if (!geo) {
    const v = document.body.dataset.version;
    geo = Promise.all(['china-provinces', 'shanghai-districts'].map((n) =>
      fetch(`/assets/vendor/${n}.geojson?v=${v}`).then((r) => r.json())));
  }
  return geo;
}

// baseMap draws the offline base layer (China's provinces, Shanghai's
// districts) in el and returns the Leaflet map.
export async function baseMap(container, label) {
  container.classList.add('map');
  container.setAttribute('role', 'region');
  container.setAttribute('aria-label', label);
  const map = L.map(container, { attributionControl: false, zoomSnap: 0.25, preferCanvas: false }).setView([31.2, 121.45], 9);
  const [prov, dist] = await outlines();
  L.geoJSON(prov, { style: { color: '#7a8793', weight: 1, fillColor: '#eef1f4', fillOpacity: 1 }, interactive: false }).addTo(map);
  L.geoJSON(dist, { style: { color: '#a5b1bc', weight: 0.8, fillColor: '#f7f9fb', fillOpacity: 1 }, interactive: false }).addTo(map);
  return map;
}

// speedColour: green under 50 km/h, amber to 90, red above.
export function speedColour(kmh) {
  if (kmh < 20) return '#2b8a3e';
  if (kmh < 50) return '#5c940d';
  if (kmh < 90) return '#e67700';
  return '#c92a2a';
}

// ---- words and day maps shared by the owner app and the console ----

export const markWords = {
  harsh_brake: ['harsh brake', 'harsh brakes'],
  harsh_accel: ['harsh acceleration', 'harsh accelerations'],
  harsh_corner: ['harsh corner', 'harsh corners'],
  speeding: ['speeding stretch', 'speeding stretches'],
};
export const flagWords = {
  teleport: 'the position jumped farther than a car can drive',
  odometer_rollback: 'the odometer went backwards',
  distance_mismatch: 'the odometer and the GPS distance disagree',
  multi_device: 'two boxes reported for this vehicle',
  too_regular: 'the data looks generated (too regular to be a real box)',
};

// explain turns the DailyScore's counters and flags into sentences.
export function explain(r) {
  const out = [];
  const per100 = (n) => (r.distance_km > 0 ? (n * 100 / Math.max(r.distance_km, 10)).toFixed(1) : '0');
  const harsh = [['harsh_brake', r.harsh_brake], ['harsh_accel', r.harsh_accel], ['harsh_corner', r.harsh_corner]];
  for (const [k, n] of harsh) if (n) out.push(`${n} ${markWords[k][n === 1 ? 0 : 1]} (${per100(n)} per 100 km) lowered the score.`);
  if (r.speeding_s) out.push(`${fmt.dur(r.speeding_s)} over the speed limit (${(100 * r.speeding_s / Math.max(r.driving_s, 1)).toFixed(1)} % of driving time) lowered the score.`);
  if (r.night_s) out.push(`${fmt.dur(r.night_s)} of night driving lowered the score.`);
  if (r.fatigue_events) out.push(`${r.fatigue_events} stretch(es) of driving too long without a break lowered the score.`);
  if (!out.length) out.push('No harsh event, speeding, night or fatigue: a clean day.');
  out.push(`Score ${r.score.toFixed(1)} of 100 over ${fmt.km(r.distance_km)} (${fmt.dur(r.driving_s)} driving) earned ${r.points} points.`);
  (r.flags || []).forEach((f, i) => out.push(`Flag ${f}: ${(r.flag_reasons || [])[i] || flagWords[f] || 'see the scoring rules'}; the day's points were reduced.`));
  return out;
}

// drawDay draws a day's track (segments coloured by speed) and its marks
// on an offline map in container; it returns the track's points.
export async function drawDay(container, label, track, marks) {
  const map = await baseMap(container, label);
  const pts = track.points;
  for (let i = 1; i < pts.length; i++) {
    const a = pts[i - 1], b = pts[i];
    L.polyline([[a.lat, a.lon], [b.lat, b.lon]], { color: speedColour(b.speed_kmh), weight: 4, className: 'track' }).addTo(map);
  }
  for (const m of marks.marks) {
    L.circleMarker([m.lat, m.lon], { radius: 7, weight: 2, fillOpacity: 0.9, className: `mark mark-${m.kind}` })
      .bindTooltip(`${markWords[m.kind][0]} ${fmt.time(m.start)}`).addTo(map);
  }
  if (pts.length) map.fitBounds(pts.map((p) => [p.lat, p.lon]), { padding: [20, 20] });
  return pts;
}
