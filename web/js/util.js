// util.js - small DOM and formatting helpers. Text always goes in through
// textContent (never innerHTML), so data from the server cannot run as code.

// h('p', {class: 'x', onclick: fn}, 'text', child, [more]) -> an element
export function h(tag, attrs, ...kids) {
  const el = tag.startsWith('svg:')
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value' && 'value' in el && !tag.startsWith('svg:')) el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, kids);
  return el;
}

function append(el, kids) {
  for (const k of kids) {
    if (k === undefined || k === null || k === false) continue;
    if (Array.isArray(k)) append(el, k);
    else el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

let liveTimer;
// Say something to screen readers (and show nothing).
export function announce(msg) {
  const live = document.getElementById('live');
  if (!live) return;
  live.textContent = '';
  clearTimeout(liveTimer);
  liveTimer = setTimeout(() => { live.textContent = msg; }, 50);
}

export function humanName(p) {
  const names = (p && p.name) || [];
  const n = names.find((x) => x.use === 'official') || names.find((x) => x.use !== 'old') || names[0];
  if (!n) return '(no name)';
  if (n.text) return n.text;
  return [(n.given || []).join(' '), n.family].filter(Boolean).join(' ') || '(no name)';
}

// "Larsen, Emma Kristine" for lists
export function sortName(p) {
  const n = ((p && p.name) || [])[0];
  if (!n) return '(no name)';
  if (!n.family) return humanName(p);
  return `${n.family}, ${(n.given || []).join(' ')}`.replace(/, $/, '');
}

export function ageOf(birthDate, at = new Date()) {
  if (!birthDate) return null;
  const [y, m, d] = birthDate.split('-').map(Number);
  if (!y) return null;
  let age = at.getFullYear() - y;
  if (m && (at.getMonth() + 1 < m || (at.getMonth() + 1 === m && d && at.getDate() < d))) age--;
  return age;
}

export function mrnOf(p) {
  const ids = (p && p.identifier) || [];
  const mr = ids.find((i) => (i.type?.coding || []).some((c) => c.code === 'MR')) || ids[0];
  return mr ? mr.value : '';
}

export function codeText(cc) {
  if (!cc) return '';
  if (cc.text) return cc.text;
  const c = (cc.coding || []).find((x) => x.display) || (cc.coding || [])[0];
  return c ? c.display || c.code : '';
}

export function hasCode(cc, system, code) {
  return ((cc && cc.coding) || []).some((c) => (!system || c.system === system) && c.code === code);
}

export function firstCode(cc, system) {
  const c = ((cc && cc.coding) || []).find((x) => !system || x.system === system);
  return c ? c.code : undefined;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

// A FHIR date or dateTime for people: "18 Mar 2024" (dates stay dates:
// no time zone shift for a plain date)
export function fmtDate(s) {
  if (!s) return '';
  const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?/.exec(s);
  if (!m) return s;
  if (!m[2]) return m[1];
  if (!m[3]) return `${MONTHS[+m[2] - 1]} ${m[1]}`;
  return `${+m[3]} ${MONTHS[+m[2] - 1]} ${m[1]}`;
}

export function fmtDateTime(s) {
  if (!s || s.length <= 10) return fmtDate(s);
  const d = new Date(s);
  if (isNaN(d)) return s;
  return `${d.getDate()} ${MONTHS[d.getMonth()]} ${d.getFullYear()} ${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

export function fmtTime(s) {
  const d = new Date(s);
  if (isNaN(d)) return '';
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

// Milliseconds since the epoch for sorting; dates without time count as midnight UTC.
export function when(s) {
  if (!s) return 0;
  const t = Date.parse(s.length === 4 ? s + '-01-01' : s.length === 7 ? s + '-01' : s);
  return isNaN(t) ? 0 : t;
}

export function todayISO(d = new Date()) {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

// The local time with its offset, as FHIR dateTime wants it.
export function nowDateTime(d = new Date()) {
  const off = -d.getTimezoneOffset(), sign = off >= 0 ? '+' : '-', a = Math.abs(off);
  const p = (n) => String(n).padStart(2, '0');
  return `${todayISO(d)}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}${sign}${p(Math.floor(a / 60))}:${p(a % 60)}`;
}

export function fmtQty(q) {
  if (!q || q.value === undefined) return '';
  const v = typeof q.value === 'number' ? +q.value.toPrecision(6) : q.value;
  return `${v} ${q.unit || q.code || ''}`.trim();
}

let uid = 0;
export function nextId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

export function debounce(fn, ms) {
  let t;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}
