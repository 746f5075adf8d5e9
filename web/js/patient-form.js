// patient-form.js - register or edit a patient: the USCDI demographics
// (name, birth date, sex, gender identity, race and ethnicity by the OMB
// categories as US Core extensions, preferred language, address, phone,
// email, MRN). The server validates; its OperationOutcome's locations
// put each message next to its field.

import { h, clear, announce, humanName } from './util.js';
import * as fhir from './fhir.js';
import * as T from './terms.js';
import { LANGUAGES, LANGUAGES_SYSTEM } from './valuesets.js';

const { SYS, US_CORE } = T;
const MRN_SYSTEM = 'urn:oid:2.16.840.1.113883.3.9999.1';
const MR_TYPE = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR', display: 'Medical record number' }], text: 'MRN' };

function field(name, label, input, hint) {
  const id = `pf-${name}`;
  input.id = id;
  input.name = name;
  input.setAttribute('aria-describedby', `${id}-err${hint ? ` ${id}-hint` : ''}`);
  return h('div', { class: 'field', dataset: { field: name } }, h('label', { for: id }, label), input,
    hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null,
    h('p', { class: 'field-error', id: `${id}-err`, hidden: true }));
}
const text = (name, label, attrs = {}, hint) => field(name, label, h('input', { type: 'text', ...attrs }), hint);
const select = (name, label, options) => field(name, label, h('select', {}, options.map(([v, l]) => h('option', { value: v }, l))));

function checks(name, legend, options, type = 'checkbox') {
  return h('fieldset', { class: 'field choices', dataset: { field: name }, 'aria-describedby': `pf-${name}-err` },
    h('legend', {}, legend),
    options.map(([code, label]) => h('label', { class: 'choice' }, h('input', { type, name, value: code }), ` ${label}`)),
    h('p', { class: 'field-error', id: `pf-${name}-err`, hidden: true }));
}

const ext = (p, url) => (p.extension || []).find((e) => e.url === url);

// Fill the form from a Patient.
function fill(form, p) {
  const n = (p.name || []).find((x) => x.use === 'official') || (p.name || [])[0] || {};
  form.family.value = n.family || '';
  form.given.value = (n.given || []).join(' ');
  form.birthDate.value = p.birthDate || '';
  form.gender.value = p.gender || '';
  form.birthSex.value = ext(p, `${US_CORE}/us-core-birthsex`)?.valueCode || '';
  const gi = ext(p, `${US_CORE}/us-core-genderIdentity`)?.valueCodeableConcept?.coding?.[0]?.code;
  form.genderIdentity.value = gi || '';
  const race = ext(p, `${US_CORE}/us-core-race`), eth = ext(p, `${US_CORE}/us-core-ethnicity`);
  const omb = (e) => (e?.extension || []).filter((x) => x.url === 'ombCategory').map((x) => x.valueCoding?.code);
  const raceCodes = omb(race);
  for (const el of form.querySelectorAll('input[name=race]')) el.checked = raceCodes.includes(el.value);
  const ethCode = omb(eth)[0];
  for (const el of form.querySelectorAll('input[name=ethnicity]')) el.checked = el.value === ethCode;
  const lang = (p.communication || []).find((c) => c.preferred) || (p.communication || [])[0];
  const lc = lang?.language?.coding?.[0]?.code || '';
  form.language.value = LANGUAGES.some((l) => l[0] === lc) ? lc : lc.split('-')[0];
  const a = (p.address || [])[0] || {};
  form.line.value = (a.line || []).join(', ');
  form.city.value = a.city || '';
  form.state.value = a.state || '';
  form.postalCode.value = a.postalCode || '';
  form.phone.value = (p.telecom || []).find((t) => t.system === 'phone')?.value || '';
  form.email.value = (p.telecom || []).find((t) => t.system === 'email')?.value || '';
  const mrn = (p.identifier || []).find((i) => (i.type?.coding || []).some((c) => c.code === 'MR'));
  form.mrn.value = mrn?.value || '';
}

// The Patient from the form, over base (edits keep what the form does not
// show), and where each element came from, for the server's messages.
function build(form, base) {
  const p = base ? JSON.parse(JSON.stringify(base)) : { resourceType: 'Patient', active: true };
  const where = [];
  const v = (k) => form[k].value.trim();
  const names = (p.name || []).filter((x) => x.use !== 'official' && x !== (p.name || [])[0]);
  const official = { use: 'official', family: v('family') || undefined, given: v('given') ? v('given').split(/\s+/) : undefined };
  p.name = [official, ...names];
  where.push(['Patient.name[0].given', 'given'], ['Patient.name[0]', 'family'], ['Patient.name', 'family']);
  if (v('birthDate')) p.birthDate = v('birthDate'); else delete p.birthDate;
  where.push(['Patient.birthDate', 'birthDate']);
  if (v('gender')) p.gender = v('gender'); else delete p.gender;
  where.push(['Patient.gender', 'gender']);

  const keep = (p.extension || []).filter((e) => ![`${US_CORE}/us-core-birthsex`, `${US_CORE}/us-core-genderIdentity`, `${US_CORE}/us-core-race`, `${US_CORE}/us-core-ethnicity`].includes(e.url));
  const exts = [];
  if (v('birthSex')) { exts.push({ url: `${US_CORE}/us-core-birthsex`, valueCode: v('birthSex') }); where.push([`Patient.extension[${keep.length + exts.length - 1}]`, 'birthSex']); }
  if (v('genderIdentity')) {
    const g = T.GENDER_IDENTITIES.find((x) => x[0] === v('genderIdentity'));
    exts.push({ url: `${US_CORE}/us-core-genderIdentity`, valueCodeableConcept: { coding: [{ system: g[2], code: g[0], display: g[1] }], text: g[1] } });
    where.push([`Patient.extension[${keep.length + exts.length - 1}]`, 'genderIdentity']);
  }
  const races = [...form.querySelectorAll('input[name=race]:checked')].map((el) => T.RACES.find((r) => r[0] === el.value));
  if (races.length) {
    exts.push({ url: `${US_CORE}/us-core-race`, extension: [
      ...races.map(([code, display]) => ({ url: 'ombCategory', valueCoding: { system: SYS.race, code, display } })),
      { url: 'text', valueString: races.map((r) => r[1]).join(', ') }] });
    where.push([`Patient.extension[${keep.length + exts.length - 1}]`, 'race']);
  }
  const eth = form.querySelector('input[name=ethnicity]:checked');
  if (eth) {
    const [code, display] = T.ETHNICITIES.find((e) => e[0] === eth.value);
    exts.push({ url: `${US_CORE}/us-core-ethnicity`, extension: [{ url: 'ombCategory', valueCoding: { system: SYS.race, code, display } }, { url: 'text', valueString: display }] });
    where.push([`Patient.extension[${keep.length + exts.length - 1}]`, 'ethnicity']);
  }
  p.extension = [...keep, ...exts];
  if (!p.extension.length) delete p.extension;

  if (v('language')) {
    const [code, display] = LANGUAGES.find((l) => l[0] === v('language'));
    p.communication = [{ language: { coding: [{ system: LANGUAGES_SYSTEM, code, display }], text: display }, preferred: true }];
  } else delete p.communication;
  where.push(['Patient.communication', 'language']);

  const addr = { use: 'home', line: v('line') ? [v('line')] : undefined, city: v('city') || undefined, state: v('state') || undefined, postalCode: v('postalCode') || undefined, country: 'US' };
  if (v('line') || v('city') || v('state') || v('postalCode')) p.address = [addr, ...(p.address || []).slice(1)];
  else delete p.address;
  where.push(['Patient.address[0].line', 'line'], ['Patient.address[0].city', 'city'], ['Patient.address[0].state', 'state'], ['Patient.address[0].postalCode', 'postalCode'], ['Patient.address', 'line']);

  const others = (p.telecom || []).filter((t) => t.system !== 'phone' && t.system !== 'email');
  const tel = [];
  if (v('phone')) tel.push({ system: 'phone', value: v('phone'), use: 'mobile' });
  if (v('email')) tel.push({ system: 'email', value: v('email') });
  tel.forEach((t, i) => where.push([`Patient.telecom[${i}]`, t.system === 'phone' ? 'phone' : 'email']));
  p.telecom = [...tel, ...others];
  if (!p.telecom.length) delete p.telecom;

  const ids = (p.identifier || []).filter((i) => !(i.type?.coding || []).some((c) => c.code === 'MR'));
  if (v('mrn')) p.identifier = [{ use: 'usual', type: MR_TYPE, system: MRN_SYSTEM, value: v('mrn') }, ...ids];
  else if (ids.length) p.identifier = ids; else delete p.identifier;
  where.push(['Patient.identifier[0]', 'mrn']);
  return { patient: p, where };
}

function clearErrors(form) {
  for (const el of form.querySelectorAll('.field-error')) { el.hidden = true; el.textContent = ''; }
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

function markError(form, name, msg) {
  const p = document.getElementById(`pf-${name}-err`);
  if (!p) return null;
  p.textContent = p.textContent ? `${p.textContent} ${msg}` : msg;
  p.hidden = false;
  const el = form.elements[name];
  const input = el instanceof RadioNodeList ? el[0] : el;
  if (input) input.setAttribute('aria-invalid', 'true');
  return input;
}

// The field for an issue location: the longest matching prefix.
export function fieldFor(where, location) {
  let best = null, len = -1;
  for (const [prefix, name] of where) {
    if ((location === prefix || location.startsWith(`${prefix}.`) || location.startsWith(`${prefix}[`)) && prefix.length > len) {
      best = name; len = prefix.length;
    }
  }
  return best;
}

export async function renderPatientForm(main, id) {
  clear(main);
  const existing = id ? await fhir.get(`Patient/${encodeURIComponent(id)}`) : null;
  const title = existing ? `Edit ${humanName(existing)}` : 'Register a patient';
  document.title = `${title} — ehr`;
  const general = h('div', { class: 'error', role: 'alert', hidden: true });
  const form = h('form', { class: 'patient-form', novalidate: true },
    h('fieldset', {}, h('legend', {}, 'Name and birth'),
      h('div', { class: 'row' }, text('family', 'Family name', { autocomplete: 'off', required: true }), text('given', 'Given names', { autocomplete: 'off' })),
      h('div', { class: 'row' }, text('birthDate', 'Birth date', { placeholder: 'YYYY-MM-DD', inputmode: 'numeric', autocomplete: 'off' }, 'As YYYY-MM-DD, e.g. 1984-07-21'),
        text('mrn', 'MRN', { autocomplete: 'off' }))),
    h('fieldset', {}, h('legend', {}, 'Sex and gender'),
      h('div', { class: 'row' },
        select('gender', 'Sex (administrative)', [['', '—'], ['female', 'Female'], ['male', 'Male'], ['other', 'Other'], ['unknown', 'Unknown']]),
        select('birthSex', 'Sex assigned at birth', [['', '—'], ['F', 'Female'], ['M', 'Male'], ['UNK', 'Unknown']]),
        select('genderIdentity', 'Gender identity', [['', '—'], ...T.GENDER_IDENTITIES.map((g) => [g[0], g[1]])]))),
    h('fieldset', {}, h('legend', {}, 'Race, ethnicity and language'),
      checks('race', 'Race (any that apply)', T.RACES),
      checks('ethnicity', 'Ethnicity', T.ETHNICITIES, 'radio'),
      select('language', 'Preferred language', [['', '—'], ...[...LANGUAGES].sort((a, b) => a[1].localeCompare(b[1]))])),
    h('fieldset', {}, h('legend', {}, 'Contact'),
      text('line', 'Street address', { autocomplete: 'off' }),
      h('div', { class: 'row' }, text('city', 'City', { autocomplete: 'off' }), text('state', 'State', { autocomplete: 'off', maxlength: 2, size: 3 }), text('postalCode', 'ZIP code', { autocomplete: 'off', inputmode: 'numeric' })),
      h('div', { class: 'row' }, text('phone', 'Phone', { type: 'tel', autocomplete: 'off' }), text('email', 'Email', { type: 'email', autocomplete: 'off' }))),
    general,
    h('div', { class: 'buttons' }, h('button', { type: 'submit' }, existing ? 'Save changes' : 'Register'),
      h('a', { class: 'button quiet', href: existing ? `#/patient/${encodeURIComponent(existing.id)}` : '#/' }, 'Cancel')));
  main.append(h('section', { class: 'card form-card', 'aria-labelledby': 'pf-title' }, h('h1', { id: 'pf-title' }, title), form));
  if (existing) fill(form, existing);
  form.family.focus();

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    general.hidden = true;
    if (!form.family.value.trim()) {
      markError(form, 'family', 'A family name is required.').focus();
      announce('Please correct the marked fields.');
      return;
    }
    const { patient, where } = build(form, existing);
    const btn = form.querySelector('button[type=submit]');
    btn.disabled = true;
    try {
      const saved = existing ? await fhir.update(patient) : await fhir.create('Patient', patient);
      announce(existing ? 'Changes saved' : 'Patient registered');
      location.hash = `#/patient/${encodeURIComponent(saved.id)}`;
    } catch (e) {
      const msgs = [];
      let first = null;
      for (const i of e.issues || []) {
        if (i.severity !== 'error' && i.severity !== 'fatal') continue;
        const name = i.where ? fieldFor(where, i.where) : null;
        const el = name ? markError(form, name, i.message) : null;
        if (el) first = first || el; else msgs.push(i.where ? `${i.where}: ${i.message}` : i.message);
      }
      if (!e.issues?.length) msgs.push(e.message);
      if (msgs.length) { general.textContent = msgs.join(' '); general.hidden = false; }
      (first || btn).focus();
      announce('The server did not accept this; see the marked fields.');
    } finally {
      btn.disabled = false;
    }
  });
}
