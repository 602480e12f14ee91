// The block explorer (public): latest checkpoint and its cosignatures,
// blocks and entries (campaign and bonus entries with their rules), an
// entry with its proof and a verify button, consistency between two sizes,
// the campaigns, search. Hash routes: #/ #/block/H #/leaf/I #/campaigns
import { el, show, status, api, text, fmt, verifyCheckpoint, ledgerKey, checkLeaf, checkQuorum, quorumWords, verdict, verifyConsistency, hexToBytes, b64ToBytes } from './common.js';

const view = () => document.getElementById('view');

async function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  status('');
  try {
    if (parts[0] === 'block') return await blockView(Number(parts[1]));
    if (parts[0] === 'leaf') return await leafView(Number(parts[1]));
    if (parts[0] === 'campaigns') return await campaignsView();
    return await homeView(parts[0] === 'before' ? parts[1] : '');
  } catch (e) {
    status('Could not load this page: ' + e.message, 'error');
  }
}

async function homeView(before) {
  const head = await api('/v1/ledger/head');
  const blocks = await api('/v1/ledger/blocks?limit=20' + (before ? `&before=${before}` : ''));
  const cpBox = el('div', { id: 'checkpoint-verdict' });
  const consOut = el('div', { id: 'consistency-verdict', 'aria-live': 'polite' });
  const cons = el('form', { id: 'consistency', class: 'row' },
    el('label', { for: 'first', text: 'From size' }), el('input', { id: 'first', name: 'first', type: 'number', min: 0, value: Math.max(0, head.tree_size - 1) }),
    el('label', { for: 'second', text: 'to size' }), el('input', { id: 'second', name: 'second', type: 'number', min: 0, value: head.tree_size }),
    el('button', { type: 'submit' }, 'Check consistency'));
  cons.addEventListener('submit', (ev) => { ev.preventDefault(); consistency(Number(cons.first.value), Number(cons.second.value), consOut); });
  show(view(),
    el('h2', { text: 'Latest checkpoint' }),
    el('dl', { class: 'kv' },
      el('dt', { text: 'Entries' }), el('dd', { id: 'tree-size', text: head.tree_size }),
      el('dt', { text: 'Root' }), el('dd', { id: 'root', class: 'hash', text: head.root }),
      el('dt', { text: 'Blocks' }), el('dd', { text: head.blocks }),
      el('dt', { text: 'Time' }), el('dd', { text: head.timestamp_ms ? fmt.time(head.timestamp_ms) + ` (${head.clock} clock)` : '–' })),
    el('pre', { id: 'checkpoint', class: 'note', tabindex: 0, 'aria-label': 'Signed checkpoint' }, head.checkpoint || 'no block yet'),
    cpBox,
    el('p', {}, el('a', { id: 'campaigns-link', href: '#/campaigns', text: 'Campaigns in the book →' })),
    el('h2', { text: 'Consistency between two sizes' }), cons, consOut,
    el('h2', { text: 'Blocks' }),
    el('table', { id: 'blocks' },
      el('caption', { text: 'Newest first' }),
      el('thead', {}, el('tr', {}, ['Height', 'Entries', 'Leaves', 'Time', 'Root'].map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, blocks.blocks.map((b) => el('tr', {},
        el('td', {}, el('a', { href: `#/block/${b.height}`, text: b.height })), el('td', { text: b.entries }),
        el('td', { text: `${b.first_index}–${b.last_index}` }), el('td', { text: fmt.time(b.timestamp_ms) }),
        el('td', { class: 'hash', text: fmt.short(b.root) }))))),
    blocks.before !== undefined ? el('p', {}, el('a', { href: `#/before/${blocks.before}`, text: 'Older blocks →' })) : null);
  // The published checkpoint (/ledger/checkpoint): with a witness policy,
  // the one its quorum cosigned; each cosignature checked here.
  const pubBox = el('div', { id: 'published-verdict' });
  cpBox.after(el('h2', { text: 'Published checkpoint (witness quorum)' }), pubBox);
  try {
    const vkey = ledgerKey();
    const r = await verifyCheckpoint(await text('/ledger/checkpoint'), vkey);
    const q = await checkQuorum(r.cp, vkey);
    show(pubBox, verdict(true, q && !q.unavailable && q.quorum !== 'none' ? 'Witness quorum verified' : 'Published checkpoint verified', [
      `${r.cp.size} entries, root ${r.cp.rootHex}, signed by ${r.cp.origin}${r.signature === 'verified' ? ' (signature verified)' : ' (signature not checked: no WebCrypto Ed25519)'}.`,
      quorumWords(q)]));
  } catch (e) {
    show(pubBox, verdict(false, e.code === 404 ? 'Nothing published yet' : 'Published checkpoint verification FAILED', [e.message]));
  }
  if (head.checkpoint) {
    try {
      const r = await verifyCheckpoint(head.checkpoint, ledgerKey());
      show(cpBox, verdict(true, r.signature === 'verified' ? 'Checkpoint signature verified' : 'Checkpoint parsed (no WebCrypto Ed25519 here: signature not checked)', [
        `Signed by ${r.cp.origin}; root ${r.cp.rootHex}.`,
        r.cosigners.length ? `Witness cosignatures from: ${r.cosigners.join(', ')}.` : 'No witness cosignature yet.']));
    } catch (e) {
      show(cpBox, verdict(false, 'Checkpoint verification FAILED', [e.message]));
    }
  }
}

async function consistency(first, second, out) {
  try {
    const c = await api(`/v1/ledger/consistency?first=${first}&second=${second}`);
    await verifyConsistency(first, second, c.proof, hexToBytes(c.root1), hexToBytes(c.root2));
    // The newer root must be the signed one when it is the head's size.
    const r = await verifyCheckpoint(await text('/ledger/checkpoint'), ledgerKey());
    if (r.cp.size === second && r.cp.rootHex !== c.root2) throw new Error('the proof ends at another root than the signed checkpoint');
    show(out, verdict(true, 'Consistent', [`The tree of ${second} entries (root ${fmt.short(c.root2)}) extends the tree of ${first} (root ${fmt.short(c.root1)}): ${c.proof.length} proof hashes checked.`]));
  } catch (e) {
    show(out, verdict(false, 'Consistency check FAILED', [e.message]));
  }
}

function entryRow(e) {
  return el('tr', {},
    el('td', {}, el('a', { href: `#/leaf/${e.leaf_index}`, text: e.leaf_index })), el('td', { text: e.kind }),
    el('td', { text: e.id }), el('td', { text: e.vehicle_id || e.account || '' }),
    el('td', { class: e.delta < 0 ? 'neg' : 'pos', text: fmt.int(e.delta) }));
}

async function blockView(h) {
  const b = await api(`/v1/ledger/blocks/${h}`);
  const hd = b.header;
  show(view(),
    el('p', {}, el('a', { href: '#/', text: '← Latest' })),
    el('h2', { text: `Block ${hd.height}` }),
    el('dl', { class: 'kv' },
      el('dt', { text: 'Hash' }), el('dd', { class: 'hash', text: hd.hash }),
      el('dt', { text: 'Previous' }), el('dd', { class: 'hash' }, hd.height ? el('a', { href: `#/block/${hd.height - 1}`, text: hd.prev_hash }) : hd.prev_hash),
      el('dt', { text: 'Tree size' }), el('dd', { text: hd.tree_size }),
      el('dt', { text: 'Root' }), el('dd', { class: 'hash', text: hd.root }),
      el('dt', { text: 'Time' }), el('dd', { text: `${fmt.time(hd.timestamp_ms)} (${hd.clock} clock)` })),
    el('table', { id: 'entries' },
      el('caption', { text: `${b.entries.length} entries (leaves ${hd.first_index}–${hd.last_index})` }),
      el('thead', {}, el('tr', {}, ['Leaf', 'Kind', 'Id', 'Vehicle / account', 'Points'].map((x) => el('th', { scope: 'col', text: x })))),
      el('tbody', {}, b.entries.map(entryRow))));
}

async function leafView(i) {
  const e = await api(`/v1/ledger/leaves/${i}`);
  const out = el('div', { id: 'leaf-verdict', 'aria-live': 'polite' });
  const btn = el('button', { type: 'button', id: 'verify' }, 'Verify in this browser');
  btn.addEventListener('click', async () => {
    show(out, el('p', { text: 'Checking…' }));
    try {
      const r = await checkLeaf(i, b64ToBytes(e.entry), e.leaf_hash);
      show(out, verdict(true, 'Verified', [`Leaf ${r.leaf} is in the tree of ${r.cp.size} entries with root ${r.cp.rootHex}.`,
        r.signature === 'verified' ? 'The checkpoint signature verifies.' : 'No WebCrypto Ed25519 here: the checkpoint signature was not checked.',
        quorumWords(r.quorum),
        `Checkpoint history: ${r.witnessed}.`]));
    } catch (err) {
      show(out, verdict(false, 'Verification FAILED', [err.message]));
    }
  });
  const pr = await api(`/v1/ledger/leaves/${i}/proof`);
  show(view(),
    el('p', {}, el('a', { href: `#/block/${e.block_height}`, text: `← Block ${e.block_height}` })),
    el('h2', { text: `Entry ${e.id}` }),
    el('dl', { class: 'kv' },
      el('dt', { text: 'Leaf' }), el('dd', { text: e.leaf_index }),
      el('dt', { text: 'Kind' }), el('dd', { text: e.kind }),
      el('dt', { text: 'Vehicle / account' }), el('dd', { text: e.vehicle_id || e.account || '–' }),
      el('dt', { text: 'Points' }), el('dd', { text: fmt.int(e.delta) }),
      e.date ? [el('dt', { text: 'Date' }), el('dd', { text: e.date })] : null,
      e.flags ? [el('dt', { text: 'Flags' }), el('dd', { text: e.flags.join(', ') })] : null,
      e.reason ? [el('dt', { text: 'Reason' }), el('dd', { text: e.reason })] : null,
      campaignFields(e),
      el('dt', { text: 'Leaf hash' }), el('dd', { class: 'hash', text: e.leaf_hash })),
    el('h3', { text: `Inclusion proof in the tree of ${pr.tree_size}` }),
    el('ol', { class: 'hashes' }, pr.proof.map((x) => el('li', { class: 'hash', text: x }))),
    btn, out);
}

// definitionFields shows a campaign's canonical definition decoded.
function definitionFields(d) {
  if (!d) return null;
  if (d.error) return [el('dt', { text: 'Definition' }), el('dd', { class: 'error-text', text: 'does not decode: ' + d.error })];
  return [
    el('dt', { text: 'Title' }), el('dd', { text: d.title }),
    el('dt', { text: 'Rule (CEL)' }), el('dd', {}, el('code', { class: 'rule', text: d.rule })),
    el('dt', { text: 'Schedule' }), el('dd', { class: 'schedule', text: `${d.start} to ${d.end}` }),
    el('dt', { text: 'Budget' }), el('dd', { class: 'budget', text: `${fmt.int(d.budget)} points, at most ${fmt.int(d.cap)} per vehicle-day` })];
}

// campaignFields shows a campaign action (kind 6) or a bonus (kind 7).
function campaignFields(e) {
  if (!e.campaign && !e.action) return null;
  const out = [];
  if (e.action) out.push(el('dt', { text: 'Action' }), el('dd', { id: 'campaign-action', text: e.action }));
  if (e.campaign) out.push(el('dt', { text: 'Campaign' }), el('dd', { id: 'campaign-id', text: e.campaign }));
  if (e.partner) out.push(el('dt', { text: 'Partner' }), el('dd', { text: e.partner }));
  if (e.public_key) out.push(el('dt', { text: 'Partner key' }), el('dd', { class: 'hash', text: e.public_key }));
  if (e.rule_hash) out.push(el('dt', { text: 'Rule hash' }), el('dd', { class: 'hash', text: e.rule_hash }));
  if (e.definition) out.push(...definitionFields(e.definition));
  if (e.credit_leaf !== undefined) {
    out.push(el('dt', { text: 'Rests on credit' }), el('dd', {}, el('a', { id: 'credit-link', href: `#/leaf/${e.credit_leaf}`, text: `leaf ${e.credit_leaf}` }),
      ' ', el('span', { class: 'hash', text: e.credit_hash })));
    out.push(el('dt', { text: 'Bonus' }), el('dd', { id: 'bonus-amount', text: `${fmt.int(e.amount)} points (the rule asked ${fmt.int(e.requested)})` }));
  }
  return out;
}

async function campaignsView() {
  const c = await api('/v1/ledger/campaigns');
  show(view(),
    el('p', {}, el('a', { href: '#/', text: '← Latest' })),
    el('h2', { text: 'Campaigns' }),
    c.campaigns.length ? null : el('p', { text: 'No campaign in the book yet.' }),
    el('ul', { id: 'campaigns', class: 'plain' }, c.campaigns.map((x) => el('li', { 'data-campaign': x.id },
      el('h3', { text: `${x.id}: ${x.status}` }),
      el('dl', { class: 'kv' },
        el('dt', { text: 'Partner' }), el('dd', { text: x.partner }),
        el('dt', { text: 'Submitted' }), el('dd', {}, el('a', { href: `#/leaf/${x.submit_leaf}`, text: `leaf ${x.submit_leaf}` })),
        el('dt', { text: 'Rule hash' }), el('dd', { class: 'hash', text: x.rule_hash }),
        definitionFields(x.definition),
        el('dt', { text: 'Paid' }), el('dd', { class: 'spent', text: `${fmt.int(x.spent)} points in ${fmt.int(x.bonuses)} bonuses` }))))));
}

async function search(ev) {
  ev.preventDefault();
  const q = document.getElementById('q').value.trim();
  if (!q) return;
  try {
    if (/^#\d+$/.test(q)) { location.hash = `#/leaf/${q.slice(1)}`; return; }
    if (/^\d+$/.test(q)) { await api(`/v1/ledger/blocks/${q}`); location.hash = `#/block/${q}`; return; }
    const p = await api(`/v1/ledger/entries/${encodeURIComponent(q)}/proof`);
    location.hash = `#/leaf/${p.leaf_index}`;
  } catch (e) {
    status(`Nothing found for “${q}”: ${e.message}`, 'error');
  }
}

function boot() {
  document.getElementById('search').addEventListener('submit', search);
  window.addEventListener('hashchange', route);
  route();
}
if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot); else boot();
