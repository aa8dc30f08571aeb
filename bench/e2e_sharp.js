// e2e_sharp.js — the Node/sharp system of bench/e2e: the same work per
// source as pipelined (GET, 256×256 inside, EXIF orientation applied,
// metadata stripped (sharp's default), alpha flattened onto white as
// pipelined does for JPEG, JPEG Q80, PUT), with N sources in flight.
//
//   node e2e_sharp.js LISTFILE PUTBASE INFLIGHT
// LISTFILE: one "URL NAME" per line; the result is PUT to PUTBASE/NAME-thumb.jpg.
// Prints one line of JSON: images, failures and the seconds from the first
// GET to the last PUT (Node's and sharp's start-up are not counted).
'use strict';
const fs = require('fs');
const sharp = require('sharp');

async function one(url, name, putbase) {
  const got = await fetch(url);
  if (!got.ok) throw new Error(`GET ${url}: ${got.status}`);
  const buf = Buffer.from(await got.arrayBuffer());
  const out = await sharp(buf).rotate()
    .resize(256, 256, { fit: 'inside', withoutEnlargement: true })
    .flatten({ background: '#ffffff' })
    .jpeg({ quality: 80 })
    .toBuffer();
  const put = await fetch(`${putbase}/${name}-thumb.jpg`, {
    method: 'PUT', body: out, headers: { 'Content-Type': 'image/jpeg' } });
  if (!put.ok) throw new Error(`PUT ${name}: ${put.status}`);
  await put.arrayBuffer();
}

async function main() {
  const [list, putbase, inflight] = process.argv.slice(2);
  const items = fs.readFileSync(list, 'utf8').split('\n').filter(Boolean)
    .map((l) => l.split(' '));
  let next = 0, failures = 0;
  const t0 = process.hrtime.bigint();
  async function lane() {
    while (next < items.length) {
      const [url, name] = items[next++];
      try { await one(url, name, putbase); } catch (e) {
        failures++; console.error(String(e));
      }
    }
  }
  await Promise.all(Array.from({ length: Number(inflight) }, lane));
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(JSON.stringify({ images: items.length, failures, seconds: s,
    versions: { sharp: sharp.versions.sharp, vips: sharp.versions.vips } }));
}
main().catch((e) => { console.error(e); process.exit(1); });
