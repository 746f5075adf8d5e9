// forms.js - documenting and ordering from the chart, each in a dialog
// opened by one key: a visit note (SOAP, as an Encounter with a
// DocumentReference), vital signs, problems, allergies, immunizations,
// prescriptions, lab orders, referrals, appointments. What is typed is kept
// as a draft in this tab until it is saved, so a lost connection or an idle
// sign-out loses nothing. Errors from the server's OperationOutcome are
// shown at the field they name.

import { h, announce, humanName, codeText, nowDateTime, todayISO, nextId } from './util.js';
import * as fhir from './fhir.js';
import { session, fhirUser, authApi } from './auth.js';
import * as T from './terms.js';

const { SYS } = T;

// key: the keyboard shortcut in the chart
export const ACTIONS = {
  note: { key: 'n', label: 'Visit note', short: 'Note' },
  vitals: { key: 'v', label: 'Vital signs', short: 'Vitals' },
  problem: { key: 'd', label: 'Problem (diagnosis)', short: 'Problem' },
  allergy: { key: 'a', label: 'Allergy', short: 'Allergy' },
  prescribe: { key: 'p', label: 'Prescribe', short: 'Prescribe' },
  immunize: { key: 'i', label: 'Immunization', short: 'Immunization' },
  lab: { key: 'o', label: 'Order a lab test', short: 'Lab order' },
  refer: { key: 'r', label: 'Refer', short: 'Referral' },
  book: { key: 'b', label: 'Book appointment', short: 'Appointment' },
};

// ---- field builders ----

function field(name, label, input, hint) {
  const id = `fld-${name}`;
  input.id = id;
  input.name = name;
  const err = h('p', { class: 'field-error', id: `${id}-err`, hidden: true });
  input.setAttribute('aria-describedby', `${id}-err${hint ? ` ${id}-hint` : ''}`);
  return h('div', { class: 'field', dataset: { field: name } }, h('label', { for: id }, label), input,
    hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null, err);
}
const text = (name, label, attrs = {}, hint) => field(name, label, h('input', { type: 'text', autocomplete: 'off', ...attrs }), hint);
const num = (name, label, attrs = {}) => field(name, label, h('input', { type: 'text', inputmode: 'decimal', autocomplete: 'off', ...attrs }));
const area = (name, label, attrs = {}) => field(name, label, h('textarea', { rows: 3, ...attrs }));
const select = (name, label, options, attrs = {}) => field(name, label,
  h('select', attrs, options.map(([v, l]) => h('option', { value: v }, l))));

// A text field with a typeahead of codes; free text allowed.
function coded(name, label, options, attrs = {}) {
  const listId = nextId('dl');
  const dl = h('datalist', { id: listId }, options.map(([, display]) => h('option', { value: display })));
  const f = text(name, label, { list: listId, ...attrs }, 'Pick a suggestion for a coded entry, or type free text.');
  f.append(dl);
  f.codes = options;
  return f;
}

// The CodeableConcept for what was typed in a coded field.
function concept(value, options, system) {
  const v = (value || '').trim();
  const hit = options.find(([, d]) => d.toLowerCase() === v.toLowerCase());
  if (hit) return { coding: [{ system: hit[2] || system, code: hit[0], display: hit[1] }], text: hit[1] };
  return { text: v };
}

// Codes of a system found in the chart's resources, merged into a list.
function harvest(resources, pick, system, base) {
  const seen = new Set(base.map((b) => b[0])), out = [...base];
  for (const r of resources || []) {
    for (const c of pick(r)?.coding || []) {
      if (c.system === system && c.code && c.display && !seen.has(c.code)) {
        seen.add(c.code);
        out.push([c.code, c.display]);
      }
    }
  }
  return out;
}

const patientRef = (chart) => ({ reference: `Patient/${chart.id}`, display: humanName(chart.data.patient) });
function userRef() {
  const u = fhirUser();
  return u ? { reference: u, display: session()?.user } : { display: session()?.user || 'unknown' };
}
const decimal = (v) => {
  const s = String(v || '').trim().replace(',', '.');
  return s === '' ? undefined : Number(s);
};
const clinicalStatus = (system, code) => ({ coding: [{ system, code }] });
const utf8b64 = (s) => {
  const bytes = new TextEncoder().encode(s);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
};

// ---- the actions ----

const DEF = {
  note: {
    fields: () => [
      select('visit', 'Visit', [['AMB', 'Office visit'], ['VR', 'Video or telephone visit'], ['HH', 'Home visit']]),
      area('s', 'Subjective', { rows: 4, required: true }), area('o', 'Objective', { rows: 3 }),
      area('a', 'Assessment', { rows: 3 }), area('p', 'Plan', { rows: 3 })],
    paths: { 'DocumentReference.content': 's', 'Encounter.class': 'visit' },
    check: (v) => (!v.s.trim() && !v.a.trim() ? { s: 'Write at least the subjective part or the assessment.' } : null),
    async save(v, chart, created) {
      const now = nowDateTime();
      const classes = { AMB: 'ambulatory', VR: 'virtual', HH: 'home health' };
      const enc = await fhir.create('Encounter', {
        resourceType: 'Encounter', status: 'finished',
        class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: v.visit, display: classes[v.visit] },
        type: [{ coding: [{ system: SYS.sct, code: '185349003', display: 'Encounter for check up' }], text: v.visit === 'AMB' ? 'Office visit' : classes[v.visit] }],
        subject: patientRef(chart), participant: [{ individual: userRef() }], period: { start: now, end: now },
      });
      created.push(enc);
      const body = [['Subjective', v.s], ['Objective', v.o], ['Assessment', v.a], ['Plan', v.p]]
        .filter(([, t]) => t.trim()).map(([k, t]) => `${k}:\n${t.trim()}`).join('\n\n');
      created.push(await fhir.create('DocumentReference', {
        resourceType: 'DocumentReference', status: 'current', docStatus: 'final',
        type: { coding: [{ system: SYS.loinc, code: '11506-3', display: 'Progress note' }], text: 'Progress note' },
        category: [{ coding: [{ system: 'http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category', code: 'clinical-note', display: 'Clinical Note' }] }],
        subject: patientRef(chart), date: new Date().toISOString(), author: [userRef()], authenticator: userRef(),
        description: 'Progress note (SOAP)',
        content: [{ attachment: { contentType: 'text/plain; charset=utf-8', data: utf8b64(body), title: 'Progress note', creation: now } }],
        context: { encounter: [{ reference: `Encounter/${enc.id}` }], period: { start: now, end: now } },
      }));
      return 'Note signed and saved';
    },
  },
  vitals: {
    fields: () => [
      h('div', { class: 'row' }, num('sys', 'Systolic (mmHg)'), num('dia', 'Diastolic (mmHg)')),
      h('div', { class: 'row' }, num('hr', 'Heart rate (/min)'), num('rr', 'Respiratory rate (/min)')),
      h('div', { class: 'row' }, num('temp', 'Temperature (°C)'), num('spo2', 'SpO₂ (%)')),
      h('div', { class: 'row' }, num('weight', 'Weight (kg)'), num('height', 'Height (cm)'))],
    paths: { 'Observation.valueQuantity': null },
    check(v) {
      const bad = {};
      for (const [, , , k] of T.VITALS) if (v[k] !== undefined && v[k] !== '' && isNaN(decimal(v[k]))) bad[k] = 'A number, please.';
      if (!!v.sys !== !!v.dia) bad[v.sys ? 'dia' : 'sys'] = 'Blood pressure needs both numbers.';
      if (!T.VITALS.some(([, , , k]) => v[k])) bad.sys = 'Type at least one measurement.';
      return Object.keys(bad).length ? bad : null;
    },
    async save(v, chart, created) {
      const when = nowDateTime();
      const base = (code, display) => ({
        resourceType: 'Observation', status: 'final',
        category: [{ coding: [{ system: SYS.obsCat, code: 'vital-signs', display: 'Vital Signs' }] }],
        code: { coding: [{ system: SYS.loinc, code, display }], text: display },
        subject: patientRef(chart), effectiveDateTime: when, performer: [userRef()],
      });
      const q = (value, ucum) => ({ value, unit: ucum === 'Cel' ? '°C' : ucum === 'mm[Hg]' ? 'mmHg' : ucum, system: SYS.ucum, code: ucum });
      const list = [];
      if (v.sys && v.dia) {
        list.push(['sys', Object.assign(base('85354-9', 'Blood pressure panel with all children optional'), {
          component: [
            { code: { coding: [{ system: SYS.loinc, code: '8480-6', display: 'Systolic blood pressure' }] }, valueQuantity: q(decimal(v.sys), 'mm[Hg]') },
            { code: { coding: [{ system: SYS.loinc, code: '8462-4', display: 'Diastolic blood pressure' }] }, valueQuantity: q(decimal(v.dia), 'mm[Hg]') }],
        })]);
      }
      for (const [code, display, ucum, k] of T.VITALS) {
        if (['sys', 'dia', 'bmi'].includes(k) || !v[k]) continue;
        const o = Object.assign(base(code, display), { valueQuantity: q(decimal(v[k]), ucum) });
        if (k === 'spo2') o.code.coding.push({ system: SYS.loinc, code: '2708-6', display: 'Oxygen saturation in Arterial blood' });
        list.push([k, o]);
      }
      if (v.weight && v.height) {
        const m = decimal(v.height) / 100, bmi = Math.round((decimal(v.weight) / (m * m)) * 10) / 10;
        if (isFinite(bmi)) list.push(['weight', Object.assign(base('39156-5', 'Body mass index (BMI) [Ratio]'), { valueQuantity: q(bmi, 'kg/m2') })]);
      }
      for (const [k, o] of list) {
        try {
          created.push(await fhir.create('Observation', o));
        } catch (e) {
          e.field = k;
          throw e;
        }
      }
      return `${list.length} vital sign${list.length === 1 ? '' : 's'} saved`;
    },
  },
  problem: {
    fields: (chart) => [coded('problem', 'Problem', harvest(chart.data.Condition, (c) => c.code, SYS.sct, T.PROBLEMS), { required: true }),
      text('onset', 'Since (date, optional)', { placeholder: 'YYYY-MM-DD' })],
    paths: { 'Condition.code': 'problem', 'Condition.onsetDateTime': 'onset' },
    check: (v) => (!v.problem.trim() ? { problem: 'Name the problem.' } : null),
    async save(v, chart, created, opts) {
      const c = {
        resourceType: 'Condition',
        clinicalStatus: clinicalStatus('http://terminology.hl7.org/CodeSystem/condition-clinical', 'active'),
        verificationStatus: clinicalStatus('http://terminology.hl7.org/CodeSystem/condition-ver-status', 'confirmed'),
        category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-category', code: 'problem-list-item', display: 'Problem List Item' }] }],
        code: concept(v.problem, opts.problem), subject: patientRef(chart), recordedDate: todayISO(), recorder: userRef(),
      };
      if (v.onset.trim()) c.onsetDateTime = v.onset.trim();
      created.push(await fhir.create('Condition', c));
      return 'Problem added';
    },
  },
  resolve: {
    title: (c) => `Resolve: ${codeText(c.code)}`,
    fields: () => [text('when', 'Resolved on', { value: todayISO(), placeholder: 'YYYY-MM-DD' })],
    paths: { 'Condition.abatementDateTime': 'when' },
    async save(v, chart, created, opts, cond) {
      const c = JSON.parse(JSON.stringify(cond));
      c.clinicalStatus = clinicalStatus('http://terminology.hl7.org/CodeSystem/condition-clinical', 'resolved');
      c.abatementDateTime = v.when.trim() || todayISO();
      await fhir.update(c);
      return 'Problem resolved';
    },
  },
  allergy: {
    fields: (chart) => [coded('substance', 'Substance', harvest(chart.data.AllergyIntolerance, (a) => a.code, SYS.sct, T.ALLERGENS), { required: true }),
      select('category', 'Kind', [['medication', 'Medication'], ['food', 'Food'], ['environment', 'Environment'], ['biologic', 'Biologic']]),
      select('criticality', 'Criticality', [['low', 'Low'], ['high', 'High'], ['unable-to-assess', 'Unable to assess']]),
      text('reaction', 'Reaction (optional)', { placeholder: 'e.g. hives' })],
    paths: { 'AllergyIntolerance.code': 'substance', 'AllergyIntolerance.reaction': 'reaction', 'AllergyIntolerance.criticality': 'criticality' },
    check: (v) => (!v.substance.trim() ? { substance: 'Name the substance.' } : null),
    async save(v, chart, created, opts) {
      const a = {
        resourceType: 'AllergyIntolerance',
        clinicalStatus: clinicalStatus('http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', 'active'),
        verificationStatus: clinicalStatus('http://terminology.hl7.org/CodeSystem/allergyintolerance-verification', 'confirmed'),
        type: 'allergy', category: [v.category], criticality: v.criticality,
        code: concept(v.substance, opts.substance), patient: patientRef(chart), recordedDate: todayISO(), recorder: userRef(),
      };
      if (v.reaction.trim()) a.reaction = [{ manifestation: [{ text: v.reaction.trim() }] }];
      created.push(await fhir.create('AllergyIntolerance', a));
      return 'Allergy recorded';
    },
  },
  prescribe: {
    fields: (chart) => [coded('med', 'Medication', harvest(chart.data.MedicationRequest, (m) => m.medicationCodeableConcept, SYS.rxnorm, T.MEDS), { required: true }),
      h('div', { class: 'row' }, num('dose', 'Dose', { value: '1' }), select('unit', 'Unit', [['{tbl}', 'tablet'], ['{cap}', 'capsule'], ['mg', 'mg'], ['mL', 'mL'], ['{puff}', 'puff']])),
      h('div', { class: 'row' }, select('route', 'Route', T.ROUTES), select('freq', 'How often', T.FREQUENCIES.map((f, i) => [String(i), f[0]]))),
      h('div', { class: 'row' }, num('qty', 'Quantity', { value: '30' }), num('refills', 'Refills', { value: '0' })),
      text('sig', 'Instructions (optional)', { placeholder: 'e.g. with food' })],
    paths: { 'MedicationRequest.medication': 'med', 'MedicationRequest.dosageInstruction': 'dose', 'MedicationRequest.dispenseRequest.quantity': 'qty', 'MedicationRequest.dispenseRequest.numberOfRepeatsAllowed': 'refills' },
    check(v) {
      const bad = {};
      if (!v.med.trim()) bad.med = 'Name the medication.';
      if (!(decimal(v.dose) > 0)) bad.dose = 'A dose above 0.';
      if (!(decimal(v.qty) > 0)) bad.qty = 'A quantity above 0.';
      if (!/^\d+$/.test(v.refills.trim())) bad.refills = 'A whole number of refills.';
      return Object.keys(bad).length ? bad : null;
    },
    async save(v, chart, created, opts) {
      const f = T.FREQUENCIES[+v.freq], route = T.ROUTES.find((r) => r[0] === v.route);
      const unitName = { '{tbl}': 'tablet', '{cap}': 'capsule', mg: 'mg', mL: 'mL', '{puff}': 'puff' }[v.unit];
      const dose = decimal(v.dose);
      const sig = `${dose} ${unitName}${dose === 1 || unitName.length < 3 ? '' : 's'} ${route[1].toLowerCase()} ${f[0]}${v.sig.trim() ? `, ${v.sig.trim()}` : ''}`;
      const repeat = { frequency: f[1], period: f[3] || 1, periodUnit: f[2] };
      created.push(await fhir.create('MedicationRequest', {
        resourceType: 'MedicationRequest', status: 'active', intent: 'order',
        medicationCodeableConcept: concept(v.med, opts.med, SYS.rxnorm), subject: patientRef(chart),
        authoredOn: nowDateTime(), requester: userRef(),
        dosageInstruction: [{ text: sig, timing: { repeat }, route: { coding: [{ system: SYS.sct, code: route[0], display: route[1] }] },
          doseAndRate: [{ doseQuantity: { value: dose, unit: unitName, system: SYS.ucum, code: v.unit } }] }],
        dispenseRequest: { numberOfRepeatsAllowed: +v.refills, quantity: { value: decimal(v.qty), unit: unitName, system: SYS.ucum, code: v.unit } },
      }));
      return 'Prescription saved';
    },
  },
  immunize: {
    fields: (chart) => [coded('vaccine', 'Vaccine (CVX)', harvest(chart.data.Immunization, (i) => i.vaccineCode, SYS.cvx, T.VACCINES), { required: true }),
      h('div', { class: 'row' }, text('date', 'Given on', { value: todayISO(), placeholder: 'YYYY-MM-DD' }), text('lot', 'Lot (optional)'))],
    paths: { 'Immunization.vaccineCode': 'vaccine', 'Immunization.occurrence': 'date', 'Immunization.lotNumber': 'lot' },
    check: (v) => (!v.vaccine.trim() ? { vaccine: 'Name the vaccine.' } : null),
    async save(v, chart, created, opts) {
      const i = {
        resourceType: 'Immunization', status: 'completed', vaccineCode: concept(v.vaccine, opts.vaccine, SYS.cvx),
        patient: patientRef(chart), occurrenceDateTime: v.date.trim(), primarySource: true, performer: [{ actor: userRef() }],
      };
      if (v.lot.trim()) i.lotNumber = v.lot.trim();
      created.push(await fhir.create('Immunization', i));
      return 'Immunization recorded';
    },
  },
  lab: {
    fields: () => [coded('test', 'Lab test (LOINC)', T.LABS, { required: true }),
      select('priority', 'Priority', [['routine', 'Routine'], ['urgent', 'Urgent'], ['stat', 'STAT']]),
      text('reason', 'Reason (optional)')],
    paths: { 'ServiceRequest.code': 'test', 'ServiceRequest.priority': 'priority' },
    check: (v) => (!v.test.trim() ? { test: 'Name the test.' } : null),
    async save(v, chart, created, opts) {
      const s = {
        resourceType: 'ServiceRequest', status: 'active', intent: 'order', priority: v.priority,
        category: [{ coding: [{ system: SYS.sct, code: '108252007', display: 'Laboratory procedure' }] }],
        code: concept(v.test, opts.test, SYS.loinc), subject: patientRef(chart), authoredOn: nowDateTime(), requester: userRef(),
      };
      if (v.reason.trim()) s.reasonCode = [{ text: v.reason.trim() }];
      created.push(await fhir.create('ServiceRequest', s));
      return 'Lab test ordered';
    },
  },
  refer: {
    fields: () => [text('to', 'Refer to (specialty or clinician)', { required: true, placeholder: 'e.g. Cardiology' }),
      area('why', 'Reason', { rows: 3, required: true }),
      select('priority', 'Priority', [['routine', 'Routine'], ['urgent', 'Urgent']])],
    paths: { 'ServiceRequest.performerType': 'to', 'ServiceRequest.reasonCode': 'why', 'Task.description': 'why' },
    check: (v) => (!v.to.trim() || !v.why.trim() ? { [!v.to.trim() ? 'to' : 'why']: 'Required.' } : null),
    async save(v, chart, created) {
      const sr = await fhir.create('ServiceRequest', {
        resourceType: 'ServiceRequest', status: 'active', intent: 'order', priority: v.priority,
        category: [{ coding: [{ system: SYS.sct, code: '3457005', display: 'Patient referral' }] }],
        code: { coding: [{ system: SYS.sct, code: '3457005', display: 'Patient referral' }], text: `Referral to ${v.to.trim()}` },
        performerType: { text: v.to.trim() }, reasonCode: [{ text: v.why.trim() }],
        subject: patientRef(chart), authoredOn: nowDateTime(), requester: userRef(),
      });
      created.push(sr);
      created.push(await fhir.create('Task', {
        resourceType: 'Task', status: 'requested', intent: 'order', priority: v.priority,
        code: { coding: [{ system: 'http://hl7.org/fhir/CodeSystem/task-code', code: 'fulfill' }] },
        description: `Referral to ${v.to.trim()}: ${v.why.trim()}`, focus: { reference: `ServiceRequest/${sr.id}` },
        for: patientRef(chart), authoredOn: nowDateTime(), requester: userRef(),
      }));
      return 'Referral sent';
    },
  },
  book: {
    fields: () => [h('div', { class: 'row' }, text('date', 'Date', { placeholder: 'YYYY-MM-DD', required: true }), text('time', 'Time', { placeholder: 'HH:MM', value: '09:00' })),
      h('div', { class: 'row' }, select('minutes', 'Length', [['15', '15 minutes'], ['20', '20 minutes'], ['30', '30 minutes'], ['45', '45 minutes'], ['60', '1 hour']])),
      text('why', 'Reason', { placeholder: 'e.g. follow-up' })],
    paths: { 'Appointment.start': 'date', 'Appointment.end': 'date', 'Appointment.description': 'why' },
    check(v) {
      if (!/^\d{4}-\d{2}-\d{2}$/.test(v.date.trim())) return { date: 'A date as YYYY-MM-DD.' };
      if (!/^\d{1,2}:\d{2}$/.test(v.time.trim())) return { time: 'A time as HH:MM.' };
      return null;
    },
    async save(v, chart, created) {
      const [hh, mm] = v.time.trim().split(':').map(Number);
      const [y, mo, d] = v.date.trim().split('-').map(Number);
      const start = new Date(y, mo - 1, d, hh, mm), end = new Date(start.getTime() + (+v.minutes) * 60000);
      created.push(await fhir.create('Appointment', {
        resourceType: 'Appointment', status: 'booked', description: v.why.trim() || 'Visit',
        start: isNaN(start) ? v.date : nowDateTime(start), end: isNaN(end) ? undefined : nowDateTime(end),
        minutesDuration: +v.minutes, created: todayISO(),
        participant: [{ actor: patientRef(chart), status: 'accepted', required: 'required' },
          { actor: userRef(), status: 'accepted', required: 'required' }],
      }));
      return 'Appointment booked';
    },
  },
};

// ---- the dialog ----

let dialog;
const draftKey = (kind, chart, extra) => `ehr.draft.${session()?.user}.${chart.id}.${kind}${extra?.id ? `.${extra.id}` : ''}`;

function values(form) {
  const v = {};
  for (const el of form.elements) if (el.name) v[el.name] = el.value;
  return v;
}

function showFieldErrors(form, errors, general) {
  for (const p of form.querySelectorAll('.field-error')) { p.hidden = true; p.textContent = ''; }
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  let first = null;
  for (const [name, msg] of Object.entries(errors || {})) {
    const el = form.elements[name];
    if (!el) { general.push(msg); continue; }
    const p = document.getElementById(`${el.id}-err`);
    p.textContent = msg;
    p.hidden = false;
    el.setAttribute('aria-invalid', 'true');
    first = first || el;
  }
  return first;
}

// Map the issues of a FhirError to the form's fields by their FHIRPath.
function issuesToFields(def, err) {
  const out = {}, general = [];
  for (const i of err.issues.filter((x) => x.severity === 'error' || x.severity === 'fatal')) {
    let best = null, len = -1;
    const where = i.where.replace(/\[\d+\]/g, '');
    for (const [prefix, name] of Object.entries(def.paths || {})) {
      if (where.startsWith(prefix) && prefix.length > len) { best = name; len = prefix.length; }
    }
    best = best || err.field;
    if (best) out[best] = out[best] ? `${out[best]} ${i.message}` : i.message;
    else general.push(`${i.where ? `${i.where}: ` : ''}${i.message}`);
  }
  if (!err.issues.length) general.push(err.message);
  return { out, general };
}

export function openAction(kind, chart, extra) {
  const def = DEF[kind];
  if (!def || !chart) return;
  if (!dialog) {
    dialog = h('dialog', { id: 'action', 'aria-labelledby': 'action-title' });
    document.body.append(dialog);
  }
  while (dialog.firstChild) dialog.firstChild.remove();
  const title = def.title ? def.title(extra) : ACTIONS[kind].label;
  const fields = def.fields(chart, extra);
  const opts = {};
  for (const f of fields.flatMap((x) => (x.classList.contains('row') ? [...x.children] : [x]))) if (f.codes) opts[f.dataset.field] = f.codes;
  const general = h('div', { class: 'error', role: 'alert', hidden: true });
  const save = h('button', { type: 'submit' }, kind === 'note' ? 'Sign and save' : 'Save');
  const form = h('form', { class: 'stack', novalidate: true, dataset: { kind } },
    h('p', { class: 'muted' }, `For ${humanName(chart.data.patient)}. Ctrl+Enter saves, Esc closes (a draft is kept).`),
    fields, general,
    h('div', { class: 'buttons' }, save, h('button', { type: 'button', class: 'quiet', onclick: () => dialog.close() }, 'Close')));
  dialog.append(h('div', { class: 'dialog-head' }, h('h2', { id: 'action-title' }, title)), form);

  const key = draftKey(kind, chart, extra);
  const draft = JSON.parse(sessionStorage.getItem(key) || 'null');
  if (draft) {
    for (const [k, v] of Object.entries(draft)) if (form.elements[k]) form.elements[k].value = v;
    form.prepend(h('p', { class: 'notice', id: 'draft-note' }, 'Your unsaved draft is back.'));
  }
  form.addEventListener('input', () => sessionStorage.setItem(key, JSON.stringify(values(form))));
  form.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); form.requestSubmit(); }
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = values(form);
    general.hidden = true;
    const bad = def.check ? def.check(v) : null;
    if (bad) {
      const g = [];
      const first = showFieldErrors(form, bad, g);
      if (first) first.focus();
      announce('Please correct the marked fields.');
      return;
    }
    save.disabled = true;
    const created = [];
    try {
      const msg = await def.save(v, chart, created, opts, extra);
      sessionStorage.removeItem(key);
      dialog.close();
      announce(msg);
      await chart.reload();
      flash(msg);
    } catch (e) {
      // no half-done entry: undo what this form had already created
      for (const r of created.reverse()) await fhir.remove(r.resourceType, r.id).catch(() => {});
      if (e instanceof fhir.FhirError) {
        const { out, general: g } = issuesToFields(def, e);
        const first = showFieldErrors(form, out, g);
        if (g.length) { general.textContent = g.join(' '); general.hidden = false; }
        (first || save).focus();
      } else {
        general.textContent = `${e.message}. Your draft is kept in this tab.`;
        general.hidden = false;
      }
    } finally {
      save.disabled = false;
    }
  });
  dialog.showModal();
  const first = form.querySelector('input, textarea, select');
  if (first) first.focus();
}

// Emergency access to a chart outside the user's panel: a reason (8 to
// 1000 characters), then POST /auth/break-glass; audited by the server.
export function openBreakGlass(chart) {
  if (!dialog) {
    dialog = h('dialog', { id: 'action', 'aria-labelledby': 'action-title' });
    document.body.append(dialog);
  }
  while (dialog.firstChild) dialog.firstChild.remove();
  const reason = area('glass-reason', 'Reason', { rows: 3, required: true });
  reason.querySelector('textarea').id = 'glass-reason';
  const err = reason.querySelector('.field-error');
  err.id = 'glass-reason-err';
  reason.querySelector('textarea').setAttribute('aria-describedby', 'glass-reason-err');
  reason.querySelector('label').setAttribute('for', 'glass-reason');
  const general = h('div', { class: 'error', role: 'alert', hidden: true });
  const form = h('form', { class: 'stack', novalidate: true },
    h('p', {}, `Open the chart of ${humanName(chart.data.patient)} in an emergency. Your reason and every access are recorded and reviewed.`),
    reason, general,
    h('div', { class: 'buttons' }, h('button', { type: 'submit' }, 'Open the chart'),
      h('button', { type: 'button', class: 'quiet', onclick: () => dialog.close() }, 'Cancel')));
  dialog.append(h('div', { class: 'dialog-head' }, h('h2', { id: 'action-title' }, 'Emergency access')), form);
  const ta = reason.querySelector('textarea');
  form.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); form.requestSubmit(); }
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const why = ta.value.trim();
    if (why.length < 8 || why.length > 1000) {
      err.textContent = 'Give a reason of 8 to 1000 characters.';
      err.hidden = false;
      ta.setAttribute('aria-invalid', 'true');
      ta.focus();
      return;
    }
    const r = await authApi('POST', '/auth/break-glass', { patient: chart.id, reason: why }).catch(() => null);
    if (!r || !r.ok) {
      general.textContent = r?.json?.error || 'The server cannot be reached.';
      general.hidden = false;
      return;
    }
    dialog.close();
    announce('Emergency access granted');
    await chart.reload();
  });
  dialog.showModal();
  ta.focus();
}

function flash(msg) {
  const el = h('p', { class: 'flash', role: 'status' }, msg);
  document.body.append(el);
  setTimeout(() => el.remove(), 4000);
}
