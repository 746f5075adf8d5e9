#!/usr/bin/env node
// chart_open.js - how long the clinician app takes from opening a patient
// to the chart fully drawn, in headless Chromium, for the demo patient and
// for the Synthea patient with the most resources; against a baseline: the
// same data (the same compartment searches) fetched with plain HTTP
// requests from Node, in parallel, with no browser and no drawing.
//
//   node bench/chart_open.js [--runs N]      (EHR_BIN: default build/ehr)
//
// The server runs with --clinician-access all and the demo data; the
// Synthea bundle goes in through the FHIR API (a transaction Bundle when
// the server takes one, else one PUT per resource). Prints p50/p90 in ms.
'use strict';

const path = require('path');
const fs = require('fs');

const TYPES = ['Condition', 'MedicationRequest', 'AllergyIntolerance', 'Immunization', 'Observation',
  'Encounter', 'Appointment', 'DocumentReference', 'Composition', 'ServiceRequest'];

// A generated patient with a long record (the case clinicians complain
// about: a dashboard over hundreds of encounters): 20 years, N visits,
// 10 observations each, a note each, problems, medications, immunizations.
function heavyPatient(visits) {
  let seed = 42;
  const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
  const R = [], pid = 'bench-heavy', subject = { reference: `Patient/${pid}` };
  const LOINC = 'http://loinc.org', UCUM = 'http://unitsofmeasure.org';
  const cat = (c) => [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: c }] }];
  R.push({ resourceType: 'Patient', id: pid, name: [{ family: 'Heavy', given: ['Bench'] }], gender: 'male', birthDate: '1950-01-01',
    identifier: [{ type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] }, system: 'urn:bench', value: 'MRN-BENCH' }] });
  const labs = [['2093-3', 'Cholesterol', 'mg/dL', 150, 280, 200], ['2345-7', 'Glucose', 'mg/dL', 70, 180, 99], ['4548-4', 'Hemoglobin A1c', '%', 5, 9, 5.7],
    ['2160-0', 'Creatinine', 'mg/dL', 0.6, 1.8, 1.3], ['2571-8', 'Triglyceride', 'mg/dL', 80, 300, 150]];
  const vitals = [['8867-4', 'Heart rate', '/min', 55, 100], ['29463-7', 'Body weight', 'kg', 70, 110], ['8310-5', 'Body temperature', 'Cel', 36.2, 37.8], ['9279-1', 'Respiratory rate', '/min', 12, 20]];
  const start = Date.UTC(2006, 0, 1), span = 20 * 365 * 86400e3;
  for (let i = 0; i < visits; i++) {
    const t = new Date(start + (span * i) / visits).toISOString(), enc = `bench-enc-${i}`;
    R.push({ resourceType: 'Encounter', id: enc, status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
      type: [{ text: 'Office visit' }], subject, period: { start: t, end: t } });
    R.push({ resourceType: 'DocumentReference', id: `bench-note-${i}`, status: 'current', type: { text: 'Progress note' }, subject, date: t,
      content: [{ attachment: { contentType: 'text/plain', data: Buffer.from(`Visit ${i}: stable. Plan unchanged.`).toString('base64') } }],
      context: { encounter: [{ reference: `Encounter/${enc}` }] } });
    for (const [code, name, unit, lo, hi, high] of labs) {
      R.push({ resourceType: 'Observation', id: `bench-lab-${i}-${code}`, status: 'final', category: cat('laboratory'),
        code: { coding: [{ system: LOINC, code, display: name }] }, subject, encounter: { reference: `Encounter/${enc}` }, effectiveDateTime: t,
        valueQuantity: { value: +(lo + rnd() * (hi - lo)).toFixed(1), unit, system: UCUM, code: unit }, referenceRange: [{ high: { value: high, unit } }] });
    }
    for (const [code, name, unit, lo, hi] of vitals) {
      R.push({ resourceType: 'Observation', id: `bench-vs-${i}-${code}`, status: 'final', category: cat('vital-signs'),
        code: { coding: [{ system: LOINC, code, display: name }] }, subject, encounter: { reference: `Encounter/${enc}` }, effectiveDateTime: t,
        valueQuantity: { value: +(lo + rnd() * (hi - lo)).toFixed(1), unit, system: UCUM, code: unit } });
    }
    R.push({ resourceType: 'Observation', id: `bench-bp-${i}`, status: 'final', category: cat('vital-signs'),
      code: { coding: [{ system: LOINC, code: '85354-9', display: 'Blood pressure panel' }] }, subject, effectiveDateTime: t,
      component: [{ code: { coding: [{ system: LOINC, code: '8480-6' }] }, valueQuantity: { value: 110 + Math.round(rnd() * 50), unit: 'mmHg', system: UCUM, code: 'mm[Hg]' } },
        { code: { coding: [{ system: LOINC, code: '8462-4' }] }, valueQuantity: { value: 70 + Math.round(rnd() * 25), unit: 'mmHg', system: UCUM, code: 'mm[Hg]' } }] });
  }
  for (let i = 0; i < 40; i++) {
    R.push({ resourceType: 'Condition', id: `bench-cond-${i}`, subject, code: { text: `Problem ${i}` },
      clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: i % 3 ? 'resolved' : 'active' }] } });
    R.push({ resourceType: 'MedicationRequest', id: `bench-med-${i}`, status: i % 4 ? 'completed' : 'active', intent: 'order', subject,
      medicationCodeableConcept: { text: `Medication ${i}` }, authoredOn: '2020-01-01' });
    R.push({ resourceType: 'Immunization', id: `bench-imm-${i}`, status: 'completed', patient: subject, occurrenceDateTime: `${2006 + (i % 20)}-10-01`,
      vaccineCode: { coding: [{ system: 'http://hl7.org/fhir/sid/cvx', code: '158' }] } });
  }
  return { pid, resources: R };
}

async function loadResources(srv, tok, resources) {
  const h = { Authorization: `Bearer ${tok}`, 'Content-Type': 'application/fhir+json', Accept: 'application/fhir+json' };
  for (let i = 0; i < resources.length; i += 500) {
    const entry = resources.slice(i, i + 500).map((r) => ({ resource: r, request: { method: 'PUT', url: `${r.resourceType}/${r.id}` } }));
    const r = await fetch(`${srv.url}/fhir`, { method: 'POST', headers: h, body: JSON.stringify({ resourceType: 'Bundle', type: 'batch', entry }) });
    if (!r.ok) {
      // no batch support: one PUT each
      for (const res of resources.slice(i, i + 500))
        await fetch(`${srv.url}/fhir/${res.resourceType}/${res.id}`, { method: 'PUT', headers: h, body: JSON.stringify(res) });
    }
  }
}

function pct(a, p) {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function loadBundle(lib, srv, tok, file) {
  const bundle = JSON.parse(fs.readFileSync(file, 'utf8'));
  const r = await fetch(`${srv.url}/fhir`, {
    method: 'POST', body: JSON.stringify(bundle),
    headers: { Authorization: `Bearer ${tok}`, 'Content-Type': 'application/fhir+json', Accept: 'application/fhir+json' },
  });
  if (r.ok) {
    // ids were assigned by the server: find the patient by its identifier
    const pt = bundle.entry.find((e) => e.resource.resourceType === 'Patient').resource;
    const res = await r.json();
    const m = res.entry.map((e) => /(?:^|\/)Patient\/([A-Za-z0-9.-]+)/.exec(e.response?.location || '')).find(Boolean);
    if (!m) throw new Error(`the transaction answer names no Patient (${pt.id})`);
    return { id: m[1], n: bundle.entry.length, how: 'transaction' };
  }
  const { patient, failures } = await lib.loadSynthea(srv, tok, file);
  if (failures.length) console.error(`bench: ${failures.length} resources failed, first: ${failures[0]}`);
  return { id: patient.id, n: bundle.entry.length, how: 'PUT each' };
}

async function plainFetch(srv, tok, id) {
  const h = { Authorization: `Bearer ${tok}`, Accept: 'application/fhir+json' };
  // the same requests as the app: the first page, then the others in parallel
  const get = async (url) => {
    const first = await (await fetch(url, { headers: h })).json();
    const next = (first.link || []).find((l) => l.relation === 'next');
    const size = (first.entry || []).length;
    if (!next || !size) return [first];
    const urls = [];
    for (let o = size; o < first.total; o += size) urls.push(next.url.replace(/([?&]_offset=)\d+/, `$1${o}`));
    return [first, ...(await Promise.all(urls.map(async (u) => (await fetch(u, { headers: h })).json())))];
  };
  const t0 = performance.now();
  await Promise.all([get(`${srv.url}/fhir/Patient/${id}`),
    ...TYPES.map((t) => get(`${srv.url}/fhir/Patient/${id}/${t}?_count=1000`))]);
  return performance.now() - t0;
}

async function openInApp(page, id) {
  return page.evaluate(async (pid) => {
    if (location.hash !== '#/') {
      location.hash = '#/';
      await new Promise((r) => setTimeout(r, 50));
    }
    document.body.dataset.chart = '';
    const t0 = performance.now();
    location.hash = `#/patient/${pid}`;
    await new Promise((resolve, reject) => {
      const done = () => document.body.dataset.chart === pid;
      if (done()) return resolve();
      const t = setTimeout(() => reject(new Error(`the chart of ${pid} did not open: ${document.querySelector('main').textContent.slice(0, 200)}`)), 60000);
      const mo = new MutationObserver(() => { if (done()) { mo.disconnect(); clearTimeout(t); resolve(); } });
      mo.observe(document.body, { attributes: true });
    });
    // fully drawn: after the next frame has been painted
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    return performance.now() - t0;
  }, id);
}

async function main() {
  const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 20;
  const root = path.join(__dirname, '..');
  process.env.EHR_BIN ||= path.join(root, 'build', 'ehr');
  const lib = await import(path.join(root, 'tests', 'e2e', 'lib.mjs'));
  const srv = await lib.startServer(['--clinician-access', 'all']);
  const br = await lib.browser();
  try {
    const tok = lib.token(srv.db);
    const patients = [{ label: 'demo (Emma Larsen)', id: 'emma' }];
    const files = lib.syntheaFiles().filter((f) => !/INDEX|practitioner|hospital/.test(path.basename(f)));
    if (files.length) {
      let best = null;
      for (const f of files) {
        const n = JSON.parse(fs.readFileSync(f, 'utf8')).entry.length;
        if (!best || n > best.n) best = { f, n };
      }
      const t0 = performance.now();
      const l = await loadBundle(lib, srv, tok, best.f);
      console.log(`loaded ${path.basename(best.f)}: ${l.n} resources (${l.how}) in ${Math.round(performance.now() - t0)} ms`);
      patients.push({ label: `Synthea, most resources (${l.n})`, id: l.id });
    } else {
      console.log('no Synthea data (../shared/data/synthea/r4-2019): the demo patient only');
    }
    if (!process.argv.includes('--no-heavy')) {
      const visits = Number(process.argv[process.argv.indexOf('--visits') + 1]) || 500;
      const hp = heavyPatient(visits);
      const t0 = performance.now();
      await loadResources(srv, tok, hp.resources);
      console.log(`loaded a generated patient: ${hp.resources.length} resources (${visits} visits) in ${Math.round(performance.now() - t0)} ms`);
      patients.push({ label: `generated, ${visits} encounters (${hp.resources.length})`, id: hp.pid });
    }
    const page = await (await br.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    await lib.signIn(page, srv, 'dr.hansen', 'Demo-Physician-1', new Map());
    console.log(`EHR_BIN=${process.env.EHR_BIN}, ${runs} runs each, after 3 warm-up runs`);
    console.log('| patient | resources | app: click to chart drawn p50 / p90 (ms) | plain HTTP fetch of the same data p50 / p90 (ms) |');
    console.log('|---|---|---|---|');
    for (const p of patients) {
      for (let i = 0; i < 3; i++) { await openInApp(page, p.id); await plainFetch(srv, tok, p.id); }
      const app = [], base = [];
      for (let i = 0; i < runs; i++) {
        app.push(await openInApp(page, p.id));
        base.push(await plainFetch(srv, tok, p.id));
      }
      const counts = JSON.parse(await page.evaluate(() => document.body.dataset.chartCounts));
      console.log(`| ${p.label} | ${counts.observations} observations, ${counts.encounters} encounters | ${pct(app, 50).toFixed(0)} / ${pct(app, 90).toFixed(0)} | ${pct(base, 50).toFixed(0)} / ${pct(base, 90).toFixed(0)} |`);
    }
  } finally {
    await br.close();
    await srv.stop();
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
