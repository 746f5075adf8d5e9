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
    const loc = res.entry.map((e) => e.response?.location || '').find((l) => l.startsWith('Patient/'));
    return { id: loc ? loc.split('/')[1] : pt.id, n: bundle.entry.length, how: 'transaction' };
  }
  const { patient, failures } = await lib.loadSynthea(srv, tok, file);
  if (failures.length) console.error(`bench: ${failures.length} resources failed, first: ${failures[0]}`);
  return { id: patient.id, n: bundle.entry.length, how: 'PUT each' };
}

async function plainFetch(srv, tok, id) {
  const h = { Authorization: `Bearer ${tok}`, Accept: 'application/fhir+json' };
  const get = async (url) => {
    const out = [];
    while (url) {
      const b = await (await fetch(url, { headers: h })).json();
      out.push(b);
      const next = (b.link || []).find((l) => l.relation === 'next');
      url = next ? next.url : null;
    }
    return out;
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
    await new Promise((resolve) => {
      const done = () => document.body.dataset.chart === pid;
      if (done()) return resolve();
      const mo = new MutationObserver(() => { if (done()) { mo.disconnect(); resolve(); } });
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
