// chart.js - a patient's chart on one screen: the banner (with allergies,
// always visible), then problems, medications, allergies, immunizations,
// latest vital signs, recent labs (abnormal flagged), orders, upcoming
// appointments and the encounters with their notes. Every vital sign and
// lab opens its trend. Data: one compartment search per type
// (GET /fhir/Patient/ID/TYPE), all in parallel.

import { h, clear, announce, humanName, ageOf, mrnOf, codeText, fmtDate, fmtDateTime, fmtQty, when, firstCode } from './util.js';
import * as fhir from './fhir.js';
import { rememberPatient } from './recent.js';
import { openTrend, seriesKey } from './trend.js';
import { ACTIONS, openAction, openBreakGlass } from './forms.js';
import { authApi } from './auth.js';

const TYPES = ['Condition', 'MedicationRequest', 'AllergyIntolerance', 'Immunization', 'Observation',
  'Encounter', 'Appointment', 'DocumentReference', 'Composition', 'ServiceRequest'];

const ACTIVE_CLINICAL = ['active', 'recurrence', 'relapse'];
const ABNORMAL = new Set(['H', 'HH', 'HU', 'L', 'LL', 'LU', 'A', 'AA', '>', '<', 'POS', 'R']);

const clinical = (r) => firstCode(r.clinicalStatus) || '';

// Everything of the patient's chart the caller may see.
export async function loadChart(id) {
  const [patient, ...lists] = await Promise.all([
    fhir.get(`Patient/${encodeURIComponent(id)}`),
    ...TYPES.map((t) => fhir.searchAll(`Patient/${encodeURIComponent(id)}/${t}?_count=1000`, 50).then((r) => r.resources)),
  ]);
  const data = { patient };
  TYPES.forEach((t, i) => { data[t] = lists[i].filter((r) => r.resourceType === t); });
  return data;
}

// Is this Observation out of range? From its interpretation, else its range.
export function abnormal(o) {
  const codes = (o.interpretation || []).flatMap((i) => (i.coding || []).map((c) => c.code));
  if (codes.length) return codes.some((c) => ABNORMAL.has(c)) ? codes.find((c) => ABNORMAL.has(c)) : null;
  const v = o.valueQuantity?.value, r = (o.referenceRange || [])[0];
  if (typeof v !== 'number' || !r) return null;
  if (r.high && typeof r.high.value === 'number' && v > r.high.value) return 'H';
  if (r.low && typeof r.low.value === 'number' && v < r.low.value) return 'L';
  return null;
}

function category(o) {
  return (o.category || []).flatMap((c) => (c.coding || []).map((x) => x.code));
}

function effective(o) {
  return o.effectiveDateTime || o.effectivePeriod?.start || o.effectiveInstant || o.issued || '';
}

export function obsValue(o) {
  if (o.valueQuantity) return fmtQty(o.valueQuantity);
  if (o.valueCodeableConcept) return codeText(o.valueCodeableConcept);
  if (o.valueString !== undefined) return o.valueString;
  if (o.valueBoolean !== undefined) return o.valueBoolean ? 'yes' : 'no';
  if (o.valueInteger !== undefined) return String(o.valueInteger);
  if (o.component?.length) {
    const sys = o.component.find((c) => firstCode(c.code) === '8480-6'), dia = o.component.find((c) => firstCode(c.code) === '8462-4');
    if (sys?.valueQuantity && dia?.valueQuantity) return `${+sys.valueQuantity.value.toPrecision(4)}/${+dia.valueQuantity.value.toPrecision(4)} ${sys.valueQuantity.unit || 'mmHg'}`;
    return o.component.map((c) => `${codeText(c.code)} ${c.valueQuantity ? fmtQty(c.valueQuantity) : codeText(c.valueCodeableConcept)}`).join('; ');
  }
  return o.dataAbsentReason ? `(${codeText(o.dataAbsentReason)})` : '';
}

// The newest Observation of each code, newest first.
function latestByCode(list) {
  const m = new Map();
  for (const o of list) {
    const k = seriesKey(o);
    const cur = m.get(k);
    if (!cur || when(effective(o)) > when(effective(cur))) m.set(k, o);
  }
  return [...m.values()].sort((a, b) => when(effective(b)) - when(effective(a)));
}

function section(id, title, actionKeys, body) {
  const head = h('div', { class: 'card-head' }, h('h2', { id: `${id}-h` }, title),
    (actionKeys || []).map((k) => h('button', {
      type: 'button', class: 'add', 'aria-keyshortcuts': ACTIONS[k].key, title: `${ACTIONS[k].label} (key ${ACTIONS[k].key})`,
      onclick: () => openAction(k, current),
    }, `+ ${ACTIONS[k].short}`)));
  return h('section', { class: `card ${id}`, id, 'aria-labelledby': `${id}-h` }, head, body);
}

function list(items, empty) {
  return items.length ? h('ul', { class: 'items' }, items) : h('p', { class: 'muted' }, empty);
}

function noteText(doc) {
  const att = doc.content?.[0]?.attachment || (doc.section ? null : null);
  if (att?.data) {
    try {
      const bin = atob(att.data);
      return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
    } catch (e) { return '(this note cannot be shown)'; }
  }
  if (doc.resourceType === 'Composition')
    return (doc.section || []).map((s) => `${s.title || ''}\n${(s.text?.div || '').replace(/<[^>]*>/g, '')}`).join('\n\n');
  return att?.url ? `(attachment at ${att.url})` : '';
}

let current = null; // { id, data } of the chart on screen, for the forms

export function currentChart() { return current; }

export async function renderChart(main, id) {
  clear(main);
  main.append(h('p', { class: 'loading', role: 'status' }, 'Opening the chart…'));
  const t0 = performance.now();
  let data, access;
  try {
    [data, access] = await Promise.all([loadChart(id),
      authApi('GET', `/auth/access?patient=${encodeURIComponent(id)}`).catch(() => null)]);
  } catch (e) {
    clear(main).append(h('section', { class: 'card' }, h('h1', {}, 'The chart cannot be opened'),
      h('p', { class: 'error', role: 'alert' }, e.status === 404 ? 'There is no such patient, or you have no access to the chart.' : e.message)));
    return;
  }
  current = { id, data, reload: () => renderChart(main, id) };
  rememberPatient(data.patient);
  if (access && access.ok && access.json.chart === false) drawNoAccess(main, data, access.json);
  else drawChart(main, data);
  const ms = Math.round(performance.now() - t0);
  main.dataset.chartMs = String(ms);
  document.body.dataset.chart = id; // the e2e tests and the benchmark wait for this
  announce(`Chart of ${humanName(data.patient)} opened.`);
}

function banner(p, allergies) {
  const age = ageOf(p.birthDate);
  const active = allergies.filter((a) => !['inactive', 'resolved'].includes(clinical(a)) && firstCode(a.verificationStatus) !== 'entered-in-error');
  return h('section', { class: 'banner', 'aria-label': 'Patient' },
    h('h1', { id: 'pt-name' }, humanName(p)),
    h('dl', { class: 'facts' },
      h('div', {}, h('dt', {}, 'Age'), h('dd', { id: 'pt-age' }, age !== null ? `${age} y` : '?')),
      h('div', {}, h('dt', {}, 'Sex'), h('dd', { id: 'pt-sex' }, p.gender || 'unknown')),
      h('div', {}, h('dt', {}, 'Born'), h('dd', {}, fmtDate(p.birthDate) || '?')),
      h('div', {}, h('dt', {}, 'MRN'), h('dd', { id: 'pt-mrn' }, mrnOf(p) || '—'))),
    h('div', { class: 'allergy-strip', id: 'pt-allergies', role: 'note', 'aria-label': 'Allergies' },
      h('span', { class: 'label' }, 'Allergies: '),
      active.length ? active.map((a) => h('span', { class: `chip ${a.criticality === 'high' ? 'high' : ''}` },
        codeText(a.code), a.criticality === 'high' ? ' (high risk)' : ''))
        : h('span', { class: 'chip none' }, allergies.length ? 'none active' : 'none recorded')),
    h('a', { class: 'edit', href: `#/patient/${encodeURIComponent(p.id)}/edit` }, 'Edit demographics'));
}

// Demographics only: the chart is outside the user's panel. The searches
// answered nothing for it, which must not look like an empty record.
function drawNoAccess(main, d, access) {
  clear(main);
  document.title = `${humanName(d.patient)} — ehr`;
  main.append(banner(d.patient, []), h('section', { class: 'card notice-card', id: 'no-access', role: 'note' },
    h('h2', {}, 'Demographics only'),
    h('p', {}, "This patient is not on your panel, so the chart is not shown. Only the demographics above are."),
    access.break_glass
      ? [h('p', {}, `In an emergency you may open the chart for ${access.minutes} minutes. You must give a reason; the access is recorded and reviewed.`),
        h('button', { type: 'button', onclick: () => openBreakGlass(current) }, 'Emergency access (break-glass)')]
      : h('p', { class: 'muted' }, 'Your role cannot use emergency access.')));
  document.getElementById('pt-allergies').replaceChildren(h('span', { class: 'label' }, 'Allergies: '), h('span', { class: 'chip' }, 'not visible'));
}

// A note in a <details>, its text decoded when it is first opened.
function noteDetails(n) {
  const pre = h('pre', {});
  const d = h('details', { class: 'note' }, h('summary', {}, `${codeText(n.type) || n.title || 'Note'} — ${fmtDateTime(n.date)}${n.docStatus ? ` (${n.docStatus})` : ''}`), pre);
  d.addEventListener('toggle', () => { if (d.open && !pre.textContent) pre.textContent = noteText(n); });
  return d;
}

const ENCOUNTERS_SHOWN = 50;

// The encounters, newest first, with their notes: the 50 newest at first,
// the rest on request (a long record stays quick to open).
function encounterList(encounters, notesBy, looseNotes) {
  const item = (e) => h('li', { class: 'encounter' },
    h('div', { class: 'enc-line' }, h('time', { datetime: e.period?.start || '' }, fmtDate(e.period?.start)), ' ',
      h('strong', {}, codeText(e.type?.[0]) || e.class?.display || e.class?.code || 'Encounter'),
      h('span', { class: 'muted' }, ` ${[e.class?.code, codeText(e.reasonCode?.[0]), e.status].filter(Boolean).join(' · ')}`)),
    (notesBy.get(`Encounter/${e.id}`) || []).map(noteDetails));
  const items = encounters.slice(0, ENCOUNTERS_SHOWN).map(item)
    .concat(looseNotes.map((n) => h('li', { class: 'encounter' }, noteDetails(n))));
  if (!items.length) return h('p', { class: 'muted' }, 'No encounters.');
  const ul = h('ul', { class: 'items' }, items);
  if (encounters.length <= ENCOUNTERS_SHOWN) return ul;
  const more = h('button', { type: 'button', class: 'quiet', id: 'more-encounters' }, `Show all ${encounters.length} encounters`);
  more.addEventListener('click', () => {
    const first = item(encounters[ENCOUNTERS_SHOWN]);
    ul.append(first, ...encounters.slice(ENCOUNTERS_SHOWN + 1).map(item));
    more.remove();
    first.querySelector('time')?.setAttribute('tabindex', '-1');
    first.querySelector('time')?.focus();
  });
  return [ul, more];
}

function drawChart(main, d) {
  clear(main);
  const p = d.patient;
  document.title = `${humanName(p)} — ehr`;
  const now = Date.now();

  const problems = d.Condition.filter((c) => ACTIVE_CLINICAL.includes(clinical(c)))
    .sort((a, b) => when(b.onsetDateTime || b.recordedDate) - when(a.onsetDateTime || a.recordedDate));
  const meds = d.MedicationRequest.filter((m) => m.status === 'active' || m.status === 'on-hold')
    .sort((a, b) => when(b.authoredOn) - when(a.authoredOn));
  const imms = d.Immunization.filter((i) => i.status !== 'entered-in-error')
    .sort((a, b) => when(b.occurrenceDateTime) - when(a.occurrenceDateTime));
  const obs = d.Observation.filter((o) => o.status !== 'entered-in-error' && o.status !== 'cancelled');
  const vitals = latestByCode(obs.filter((o) => category(o).includes('vital-signs')));
  const labs = obs.filter((o) => category(o).includes('laboratory'));
  const latestLabs = latestByCode(labs);
  const upcoming = d.Appointment.filter((a) => when(a.start) >= now - 3600e3 && !['cancelled', 'noshow', 'fulfilled', 'entered-in-error'].includes(a.status))
    .sort((a, b) => when(a.start) - when(b.start));
  const orders = d.ServiceRequest.filter((s) => ['active', 'draft', 'on-hold'].includes(s.status))
    .sort((a, b) => when(b.authoredOn) - when(a.authoredOn));
  const encounters = [...d.Encounter].sort((a, b) => when(b.period?.start) - when(a.period?.start));

  const notesBy = new Map();
  const looseNotes = [];
  for (const doc of [...d.DocumentReference, ...d.Composition]) {
    if (doc.status === 'entered-in-error') continue;
    const ref = doc.resourceType === 'Composition' ? doc.encounter?.reference : doc.context?.encounter?.[0]?.reference;
    if (ref) {
      if (!notesBy.has(ref)) notesBy.set(ref, []);
      notesBy.get(ref).push(doc);
    } else looseNotes.push(doc);
  }

  const trendButton = (o, label) => h('button', {
    type: 'button', class: 'trend-link', 'data-code': seriesKey(o),
    onclick: () => openTrend(obs, seriesKey(o), label),
  }, label);

  const actionBar = h('nav', { class: 'actions', 'aria-label': 'Document and order' },
    Object.entries(ACTIONS).map(([k, a]) => h('button', {
      type: 'button', 'aria-keyshortcuts': a.key, onclick: () => openAction(k, current),
    }, h('span', { class: 'key', 'aria-hidden': 'true' }, a.key), ` ${a.label}`)));

  const grid = h('div', { class: 'grid chart' },
    section('problems', 'Active problems', ['problem'], list(problems.map((c) => h('li', {},
      h('span', {}, codeText(c.code)), h('span', { class: 'muted' }, c.onsetDateTime ? ` since ${fmtDate(c.onsetDateTime)}` : ''),
      h('button', { type: 'button', class: 'small', onclick: () => openAction('resolve', current, c) }, 'Resolve'))), 'No active problems.')),
    section('meds', 'Medications', ['prescribe'], list(meds.map((m) => h('li', {},
      h('span', {}, codeText(m.medicationCodeableConcept) || m.medicationReference?.display || 'medication'),
      h('span', { class: 'muted' }, ` ${m.dosageInstruction?.[0]?.text || ''}`))), 'No active medications.')),
    section('allergies', 'Allergies', ['allergy'], list(d.AllergyIntolerance.map((a) => h('li', {},
      h('span', {}, codeText(a.code)), h('span', { class: 'muted' },
        ` ${[a.criticality ? `${a.criticality} criticality` : '', (a.reaction || []).flatMap((r) => (r.manifestation || []).map(codeText)).join(', '), clinical(a) !== 'active' ? clinical(a) : ''].filter(Boolean).join(' · ')}`))),
    'No allergies recorded.')),
    section('vitals', 'Latest vital signs', ['vitals'], list(vitals.map((o) => h('li', {},
      trendButton(o, codeText(o.code)), h('span', { class: 'value' }, ` ${obsValue(o)}`),
      h('span', { class: 'muted' }, ` ${fmtDate(effective(o))}`))), 'No vital signs recorded.')),
    section('labs', 'Recent lab results', ['lab'], list(latestLabs.slice(0, 30).map((o) => {
      const flag = abnormal(o);
      return h('li', { class: flag ? 'abnormal' : '' },
        trendButton(o, codeText(o.code)), h('span', { class: 'value' }, ` ${obsValue(o)}`),
        flag ? h('span', { class: 'flag', title: 'outside the reference range' }, ` ${flag}`) : null,
        flag ? h('span', { class: 'sr' }, ' abnormal') : null,
        h('span', { class: 'muted' }, ` ${fmtDate(effective(o))}`));
    }), 'No lab results.')),
    section('imms', 'Immunizations', ['immunize'], list(imms.slice(0, 20).map((i) => h('li', {},
      h('span', {}, codeText(i.vaccineCode)), h('span', { class: 'muted' }, ` ${fmtDate(i.occurrenceDateTime)}`))), 'No immunizations recorded.')),
    section('orders', 'Open orders and referrals', ['lab', 'refer'], list(orders.map((s) => h('li', {},
      h('span', {}, codeText(s.code)), h('span', { class: 'muted' }, ` ${s.status} · ${fmtDate(s.authoredOn)}`))), 'No open orders.')),
    section('appts', 'Upcoming appointments', ['book'], list(upcoming.map((a) => h('li', {},
      h('span', {}, fmtDateTime(a.start)), h('span', { class: 'muted' }, ` ${a.description || codeText(a.serviceType?.[0]) || ''} (${a.status})`))), 'No upcoming appointments.')),
    section('encounters', 'Encounters and notes', ['note'], encounterList(encounters, notesBy, looseNotes)),
  );
  main.append(banner(p, d.AllergyIntolerance), actionBar, grid);
  document.body.dataset.chartCounts = JSON.stringify({
    problems: problems.length, meds: meds.length, allergies: d.AllergyIntolerance.length, vitals: vitals.length,
    labs: latestLabs.length, immunizations: imms.length, encounters: encounters.length, observations: obs.length,
  });
}

// Chart keyboard shortcuts (outside fields, no dialog open).
document.addEventListener('keydown', (ev) => {
  if (!current || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const tag = document.activeElement?.tagName;
  if (['INPUT', 'TEXTAREA', 'SELECT'].includes(tag) || document.querySelector('dialog[open]')) return;
  if (!location.hash.startsWith(`#/patient/${encodeURIComponent(current.id)}`) || location.hash.endsWith('/edit')) return;
  const hit = Object.entries(ACTIONS).find(([, a]) => a.key === ev.key);
  if (hit) {
    ev.preventDefault();
    openAction(hit[0], current);
  }
});
