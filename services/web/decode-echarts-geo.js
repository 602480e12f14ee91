// Decodes ECharts' compressed map GeoJSON (UTF8Encoding: each ring a string
// of zigzag-encoded deltas, char code - 64, scaled by 1024, starting at its
// encodeOffsets) into plain GeoJSON with coordinates rounded to 1e-4 degree.
// Usage: node decode-echarts-geo.js js|json FILE  (js: a registerMap('…', {…}) file)
'use strict';
const fs = require('fs');
const [mode, file] = process.argv.slice(2);
let text = fs.readFileSync(file, 'utf8');
let geo;
if (mode === 'js') {
  const start = text.indexOf('{"type"');
  let depth = 0, end = start;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (c === '"') { i++; while (text[i] !== '"') { if (text[i] === '\\') i++; i++; } continue; }
    if (c === '{') depth++;
    if (c === '}') { depth--; if (depth === 0) { end = i + 1; break; } }
  }
  geo = JSON.parse(text.slice(start, end));
} else {
  geo = JSON.parse(text);
}
const round = (v) => Math.round(v * 1e4) / 1e4;
function ring(s, off) {
  if (typeof s !== 'string') return s;
  let px = off[0], py = off[1];
  const out = [];
  for (let i = 0; i + 1 < s.length; i += 2) {
    let x = s.charCodeAt(i) - 64, y = s.charCodeAt(i + 1) - 64;
    x = (x >> 1) ^ -(x & 1); y = (y >> 1) ^ -(y & 1);
    x += px; y += py; px = x; py = y;
    out.push([round(x / 1024), round(y / 1024)]);
  }
  return out;
}
const features = geo.features.map((f) => {
  const g = f.geometry, enc = g.encodeOffsets;
  let coords = g.coordinates;
  if (g.type === 'Polygon') coords = coords.map((r, j) => ring(r, enc ? enc[j] : null));
  else if (g.type === 'MultiPolygon') coords = coords.map((p, i) => p.map((r, j) => ring(r, enc ? enc[i][j] : null)));
  return { type: 'Feature', properties: { name: (f.properties || {}).name || '' }, geometry: { type: g.type, coordinates: coords } };
});
process.stdout.write(JSON.stringify({ type: 'FeatureCollection', features }) + '\n');
