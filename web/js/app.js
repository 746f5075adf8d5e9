// app.js - the clinician app: start-up, the router (#/..., so the server
// serves one page), the patient finder in the top bar, and the landing
// page (today's appointments, recent patients).

import { h, clear, announce, sortName, ageOf, mrnOf, fmtDate, fmtTime, todayISO, debounce } from './util.js';
import { boot, signOut, onSignedOut, renderSignIn, startIdle, session } from './auth.js';
import * as fhir from './fhir.js';
import { renderChart } from './chart.js';
import { renderPatientForm } from './patient-form.js';
import { recentPatients } from './recent.js';

const main = document.getElementById('main');

// ---- the finder ----

// What the typed text is, and the search parameter for it.
export function classify(text) {
  const t = text.trim();
  let m;
  if ((m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(t))) return { param: 'birthdate', value: t, what: 'birth date' };
  if ((m = /^(\d{1,2})\/(\d{1,2})\/(\d{4})$/.exec(t)))
    return { param: 'birthdate', value: `${m[3]}-${m[1].padStart(2, '0')}-${m[2].padStart(2, '0')}`, what: 'birth date' };
  const digits = t.replace(/\D/g, '');
  if (/^[+()\d\s.-]+$/.test(t) && digits.length >= 7) return { param: 'phone', value: t, what: 'phone' };
  if (/\d/.test(t)) return { param: 'identifier', value: t, what: 'MRN' };
  return { param: 'name', value: t, what: 'name' };
}

function patientLine(p) {
  const age = ageOf(p.birthDate);
  return [h('span', { class: 'pname' }, typeof p.name === 'string' ? p.name : sortName(p)),
    h('span', { class: 'pmeta' },
      [p.gender, p.birthDate ? `${fmtDate(p.birthDate)}${age !== null ? ` (${age})` : ''}` : '',
        p.mrn ?? mrnOf(p)].filter(Boolean).join(' · '))];
}

function setupFinder() {
  const q = document.getElementById('q'), list = document.getElementById('q-results');
  const note = document.getElementById('q-note');
  let items = [], active = -1, seq = 0;
  const close = () => { list.hidden = true; q.setAttribute('aria-expanded', 'false'); active = -1; q.removeAttribute('aria-activedescendant'); };
  const setActive = (i) => {
    const opts = list.querySelectorAll('[role=option]');
    opts.forEach((o, k) => o.setAttribute('aria-selected', String(k === i)));
    active = i;
    if (opts[i]) { q.setAttribute('aria-activedescendant', opts[i].id); opts[i].scrollIntoView({ block: 'nearest' }); }
  };
  const open = (p) => { close(); q.value = ''; location.hash = `#/patient/${encodeURIComponent(p.id)}`; };
  const run = debounce(async () => {
    const text = q.value.trim();
    note.hidden = true;
    if (text.length < 2) { close(); return; }
    const c = classify(text), mine = ++seq;
    if (!(await fhir.supports('Patient', c.param))) {
      if (mine !== seq) return;
      close();
      note.textContent = `This server cannot search patients by ${c.what} yet (its CapabilityStatement has no '${c.param}' search).`;
      note.hidden = false;
      return;
    }
    try {
      const params = new URLSearchParams({ [c.param]: c.value, _count: '10' });
      if (await fhir.supports('Patient', '_sort')) params.set('_sort', 'family,given');
      const b = await fhir.get(`Patient?${params}`);
      if (mine !== seq) return;
      items = (b.entry || []).map((e) => e.resource).filter((r) => r && r.resourceType === 'Patient');
      clear(list);
      items.forEach((p, i) => list.append(h('li', {
        id: `q-opt-${i}`, role: 'option', 'aria-selected': 'false', class: 'option',
        onmousedown: (ev) => { ev.preventDefault(); open(p); },
      }, patientLine(p))));
      if (!items.length) list.append(h('li', { class: 'empty', role: 'option', 'aria-disabled': 'true' }, `No patient with this ${c.what}.`));
      list.hidden = false;
      q.setAttribute('aria-expanded', 'true');
      announce(`${items.length} patient${items.length === 1 ? '' : 's'} found`);
    } catch (e) {
      if (mine !== seq) return;
      note.textContent = e.message;
      note.hidden = false;
    }
  }, 150);
  q.addEventListener('input', run);
  q.addEventListener('keydown', (ev) => {
    if (ev.key === 'ArrowDown' && items.length) { ev.preventDefault(); setActive(Math.min(items.length - 1, active + 1)); }
    else if (ev.key === 'ArrowUp' && items.length) { ev.preventDefault(); setActive(Math.max(0, active - 1)); }
    else if (ev.key === 'Enter') {
      ev.preventDefault();
      if (items[active]) open(items[active]);
      else if (items.length === 1) open(items[0]);
    } else if (ev.key === 'Escape') close();
  });
  q.addEventListener('blur', () => setTimeout(close, 150));
  // "/" anywhere (outside a field) jumps to the finder
  document.addEventListener('keydown', (ev) => {
    const tag = document.activeElement?.tagName;
    if (ev.key === '/' && !['INPUT', 'TEXTAREA', 'SELECT'].includes(tag) && !document.querySelector('dialog[open]')) {
      ev.preventDefault();
      q.focus();
    }
  });
}

// ---- landing page ----

async function renderToday() {
  clear(main);
  const s = session();
  const schedule = h('section', { class: 'card', 'aria-labelledby': 'today-h' }, h('h2', { id: 'today-h' }, `Today, ${fmtDate(todayISO())}`));
  const recent = h('section', { class: 'card', 'aria-labelledby': 'recent-h' }, h('h2', { id: 'recent-h' }, 'Recent patients'));
  const all = h('section', { class: 'card', 'aria-labelledby': 'all-h' }, h('h2', { id: 'all-h' }, 'Patients'));
  main.append(h('h1', { class: 'sr' }, 'Today'), h('div', { class: 'grid today' }, schedule, recent, all));
  document.title = 'Today — ehr';

  const rp = recentPatients();
  recent.append(rp.length ? h('ul', { class: 'plist' }, rp.map((p) => h('li', {},
    h('a', { href: `#/patient/${encodeURIComponent(p.id)}` }, patientLine(p)))))
    : h('p', { class: 'muted' }, 'Patients you open appear here.'));

  // today's appointments: Appointment?date=today (needs the date search)
  try {
    if (!(await fhir.supports('Appointment', 'date'))) {
      schedule.append(h('p', { class: 'muted' }, "Today's schedule needs appointment search by date, which this server does not offer yet."));
    } else {
      const d = todayISO();
      const params = new URLSearchParams({ date: d, _count: '200' });
      if (await fhir.supports('Appointment', '_sort')) params.set('_sort', 'date');
      const { resources } = await fhir.searchAll(`Appointment?${params}`, 3);
      const appts = resources.filter((a) => a.resourceType === 'Appointment' && a.status !== 'cancelled')
        .sort((a, b) => (a.start || '').localeCompare(b.start || ''));
      if (!appts.length) schedule.append(h('p', { class: 'muted' }, 'No appointments today.'));
      else schedule.append(h('ol', { class: 'schedule' }, appts.map((a) => {
        const pt = (a.participant || []).map((x) => x.actor).find((r) => r?.reference?.startsWith('Patient/'));
        const pid = pt ? pt.reference.slice(8) : null;
        return h('li', {}, h('time', { datetime: a.start }, fmtTime(a.start)), ' ',
          pid ? h('a', { href: `#/patient/${encodeURIComponent(pid)}` }, pt.display || `Patient ${pid}`) : '(no patient)',
          h('span', { class: 'muted' }, ` ${a.description || a.serviceType?.[0]?.text || ''} ${a.status}`));
      })));
    }
  } catch (e) {
    schedule.append(h('p', { class: 'error' }, e.message));
  }

  // every patient the user may see, as a fallback way in
  try {
    const b = await fhir.get('Patient?_count=50');
    const pts = (b.entry || []).map((e) => e.resource).filter((r) => r?.resourceType === 'Patient')
      .sort((a, b2) => sortName(a).localeCompare(sortName(b2)));
    all.append(pts.length ? h('ul', { class: 'plist' }, pts.map((p) => h('li', {},
      h('a', { href: `#/patient/${encodeURIComponent(p.id)}` }, patientLine(p)))))
      : h('p', { class: 'muted' }, 'No patients yet.'));
    if (b.total > pts.length) all.append(h('p', { class: 'muted' }, `${pts.length} of ${b.total}; use the finder above.`));
  } catch (e) {
    all.append(h('p', { class: 'error' }, e.message));
  }
  announce(`Today. ${rp.length} recent patients.`);
  if (s) document.getElementById('who').textContent = `${s.user} (${s.role})`;
}

// ---- router ----

async function route() {
  const hash = location.hash || '#/';
  const parts = hash.slice(2).split('/').map(decodeURIComponent);
  try {
    if (parts[0] === 'patient' && parts[1]) {
      if (parts[2] === 'edit') await renderPatientForm(main, parts[1]);
      else await renderChart(main, parts[1], parts[2]);
    } else if (parts[0] === 'register') {
      await renderPatientForm(main, null);
    } else {
      await renderToday();
    }
  } catch (e) {
    clear(main).append(h('section', { class: 'card' }, h('h1', {}, 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, e.message)));
  }
  if (!document.querySelector('dialog[open]') && !main.contains(document.activeElement)) main.focus({ preventScroll: true });
}

async function start() {
  onSignedOut((message) => {
    clear(main);
    renderSignIn(main, message);
  });
  const state = await boot(main);
  if (state !== 'ready') return;
  const s = session();
  document.getElementById('topbar').hidden = false;
  document.getElementById('who').textContent = `${s.user} (${s.role})`;
  document.getElementById('logout').addEventListener('click', () => signOut());
  const dlg = document.getElementById('idle');
  dlg.addEventListener('cancel', (ev) => { ev.preventDefault(); document.getElementById('idle-stay').click(); });
  startIdle(s.idle_timeout);
  setupFinder();
  window.addEventListener('hashchange', route);
  await route();
}

start();
