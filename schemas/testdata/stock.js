// A stock Avro reader for minecart's records: it knows only the .avsc files
// and uses the npm package avsc (a second, independent Avro implementation)
// for the Parsing Canonical Form and the binary decoding. The CRC-64-AVRO
// fingerprint is computed here from the Avro specification
// ("Schema Fingerprints"), not from minecart's Go code.
//
// Usage (avsc must be resolvable, e.g. NODE_PATH=/path/to/node_modules):
//   node stock.js fingerprints SCHEMA_DIR      prints {name: {canonical, fingerprint}} for every *.avsc
//   node stock.js canonical                    reads a JSON array of schemas (stdin), prints [{canonical, fingerprint}]
//   node stock.js decode CASES_JSON            decodes single-object records, compares with expected values
// Fingerprints are 16 hex digits of the unsigned 64-bit value.
'use strict';

const fs = require('fs');
const path = require('path');
const avro = require('avsc');

const EMPTY = 0xc15d213aa4d7a795n;
const MASK = 0xffffffffffffffffn;
const TABLE = [];
for (let i = 0n; i < 256n; i++) {
  let fp = i;
  for (let j = 0; j < 8; j++) {
    fp = (fp >> 1n) ^ (EMPTY & (-(fp & 1n) & MASK));
  }
  TABLE.push(fp);
}

function crc64avro(buf) {
  let fp = EMPTY;
  for (const b of buf) {
    fp = (fp >> 8n) ^ TABLE[Number((fp ^ BigInt(b)) & 0xffn)];
  }
  return fp;
}

function hex16(n) {
  return n.toString(16).padStart(16, '0');
}

// canonical returns avsc's Parsing Canonical Form of schema (a JSON value).
function canonical(schema) {
  return JSON.stringify(avro.Type.forSchema(schema).schema());
}

function fingerprintOf(pcf) {
  return hex16(crc64avro(Buffer.from(pcf, 'utf8')));
}

function fullName(schema) {
  if (schema.name.includes('.') || !schema.namespace) return schema.name;
  return schema.namespace + '.' + schema.name;
}

// normalize turns an avsc value into the JSON form the Go test writes:
// bytes as base64, everything else as is (unions are wrapped, as in goavro).
function normalize(v) {
  if (Buffer.isBuffer(v)) return {$bytes: v.toString('base64')};
  if (Array.isArray(v)) return v.map(normalize);
  if (v !== null && typeof v === 'object') {
    const out = {};
    for (const k of Object.keys(v).sort()) out[k] = normalize(v[k]);
    return out;
  }
  return v;
}

function sorted(v) {
  if (Array.isArray(v)) return v.map(sorted);
  if (v !== null && typeof v === 'object') {
    const out = {};
    for (const k of Object.keys(v).sort()) out[k] = sorted(v[k]);
    return out;
  }
  return v;
}

function cmdFingerprints(dir) {
  const out = {};
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.avsc')).sort()) {
    const schema = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
    const pcf = canonical(schema);
    out[fullName(schema)] = {file: f, canonical: pcf, fingerprint: fingerprintOf(pcf)};
  }
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
}

function cmdCanonical() {
  const schemas = JSON.parse(fs.readFileSync(0, 'utf8'));
  const out = schemas.map((s) => {
    try {
      const pcf = canonical(s);
      return {canonical: pcf, fingerprint: fingerprintOf(pcf)};
    } catch (e) {
      return {error: e.message};
    }
  });
  process.stdout.write(JSON.stringify(out) + '\n');
}

// cmdDecode reads [{schema_file, record_file, expected}] and, for each,
// checks the single-object header against the fingerprint avsc's canonical
// form gives, decodes the body with avsc and compares it with expected.
function cmdDecode(casesFile) {
  const cases = JSON.parse(fs.readFileSync(casesFile, 'utf8'));
  let failed = 0;
  for (const c of cases) {
    const schema = JSON.parse(fs.readFileSync(c.schema_file, 'utf8'));
    const type = avro.Type.forSchema(schema, {wrapUnions: true});
    const buf = fs.readFileSync(c.record_file);
    const fail = (msg) => {
      failed++;
      console.log(`FAIL ${fullName(schema)}: ${msg}`);
    };
    if (buf.length < 10 || buf[0] !== 0xc3 || buf[1] !== 0x01) {
      fail(`no single-object header: ${buf.subarray(0, 2).toString('hex')}`);
      continue;
    }
    const got = hex16(buf.readBigUInt64LE(2));
    const want = fingerprintOf(canonical(schema));
    if (got !== want) {
      fail(`header fingerprint ${got}, avsc's canonical form gives ${want}`);
      continue;
    }
    let value;
    try {
      value = type.fromBuffer(buf.subarray(10)); // throws on trailing bytes
    } catch (e) {
      fail(`avsc cannot decode the body: ${e.message}`);
      continue;
    }
    const gotJSON = JSON.stringify(normalize(value));
    const wantJSON = JSON.stringify(sorted(c.expected));
    if (gotJSON !== wantJSON) {
      fail(`decoded ${gotJSON}\n  want    ${wantJSON}`);
      continue;
    }
    console.log(`ok ${fullName(schema)} fingerprint ${got}`);
  }
  if (failed > 0) process.exit(1);
}

const [cmd, arg] = process.argv.slice(2);
switch (cmd) {
  case 'fingerprints':
    cmdFingerprints(arg);
    break;
  case 'canonical':
    cmdCanonical();
    break;
  case 'decode':
    cmdDecode(arg);
    break;
  default:
    console.error('usage: node stock.js fingerprints DIR | canonical < schemas.json | decode CASES_JSON');
    process.exit(2);
}
