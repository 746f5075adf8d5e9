// trend.js - one lab or vital sign over time: an SVG plot with the
// reference range drawn as a band, and the same numbers as a table (for
// screen readers, and for reading exact values).

import { h, fmtDate, fmtDateTime, firstCode, codeText, when } from './util.js';

const LOINC = 'http://loinc.org';
const SVG = (tag, attrs, ...kids) => h(`svg:${tag}`, attrs, ...kids);

// The key that groups an Observation's values into one series: its LOINC
// code, else its first code, else its text.
export function seriesKey(o) {
  return firstCode(o.code, LOINC) || firstCode(o.code) || codeText(o.code);
}

function effective(o) {
  return o.effectiveDateTime || o.effectivePeriod?.start || o.effectiveInstant || o.issued || '';
}

// The series of points: [{name, unit, points: [{t, v, o}]}]
export function buildSeries(observations, key) {
  const mine = observations.filter((o) => seriesKey(o) === key && effective(o))
    .sort((a, b) => when(effective(a)) - when(effective(b)));
  const series = new Map();
  const add = (name, q, o) => {
    if (!q || typeof q.value !== 'number') return;
    if (!series.has(name)) series.set(name, { name, unit: q.unit || q.code || '', points: [] });
    series.get(name).points.push({ t: when(effective(o)), v: q.value, o });
  };
  for (const o of mine) {
    if (o.valueQuantity) add(codeText(o.code), o.valueQuantity, o);
    for (const c of o.component || []) add(codeText(c.code), c.valueQuantity, o);
  }
  // the reference range of the newest result that has one
  let range = null;
  for (let i = mine.length - 1, found = false; i >= 0 && !found; i--) {
    const r = (mine[i].referenceRange || [])[0];
    if (r && (r.low?.value !== undefined || r.high?.value !== undefined)) {
      range = { low: r.low?.value, high: r.high?.value, text: r.text };
      found = true;
    }
  }
  return { series: [...series.values()], range, observations: mine };
}

function niceTicks(lo, hi, n) {
  const span = hi - lo || 1, raw = span / n, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= n) || 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(10));
  return out;
}

// The plot as an SVG element.
export function plot({ series, range }, title) {
  const W = 640, H = 300, L = 56, R = 16, T = 16, B = 40;
  const pts = series.flatMap((s) => s.points);
  const ts = pts.map((p) => p.t), vs = pts.map((p) => p.v);
  if (range?.low !== undefined) vs.push(range.low);
  if (range?.high !== undefined) vs.push(range.high);
  let tmin = Math.min(...ts), tmax = Math.max(...ts);
  if (tmin === tmax) { tmin -= 86400e3 * 30; tmax += 86400e3 * 30; }
  let vmin = Math.min(...vs), vmax = Math.max(...vs);
  const pad = (vmax - vmin || Math.abs(vmax) || 1) * 0.1;
  vmin -= pad; vmax += pad;
  if (Math.min(...pts.map((p) => p.v)) >= 0 && vmin < 0) vmin = 0;
  const x = (t) => L + ((t - tmin) / (tmax - tmin)) * (W - L - R);
  const y = (v) => T + (1 - (v - vmin) / (vmax - vmin)) * (H - T - B);
  const svg = SVG('svg', { viewBox: `0 0 ${W} ${H}`, class: 'plot', role: 'img', 'aria-labelledby': 'plot-title' },
    SVG('title', { id: 'plot-title' }, title));
  if (range && (range.low !== undefined || range.high !== undefined)) {
    const top = y(range.high !== undefined ? range.high : vmax), bottom = y(range.low !== undefined ? range.low : vmin);
    svg.append(SVG('rect', { class: 'range', x: L, y: top, width: W - L - R, height: Math.max(0, bottom - top) },
      SVG('title', {}, `reference range ${range.low ?? ''}–${range.high ?? ''}`)));
    for (const v of [range.low, range.high]) if (v !== undefined)
      svg.append(SVG('line', { class: 'range-edge', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
  }
  for (const v of niceTicks(vmin, vmax, 5)) {
    svg.append(SVG('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      SVG('text', { class: 'tick', x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, String(v)));
  }
  const years = (tmax - tmin) > 2 * 365 * 86400e3;
  const tt = niceTicks(tmin, tmax, 6);
  for (const t of tt) {
    const d = new Date(t);
    const label = years ? String(d.getFullYear()) : fmtDate(d.toISOString().slice(0, 10));
    svg.append(SVG('text', { class: 'tick', x: x(t), y: H - B + 18, 'text-anchor': 'middle' }, label));
  }
  svg.append(SVG('line', { class: 'axis', x1: L, x2: L, y1: T, y2: H - B }),
    SVG('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
  series.forEach((s, i) => {
    const cls = `s${i % 4}`;
    if (s.points.length > 1)
      svg.append(SVG('polyline', { class: `line ${cls}`, points: s.points.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ') }));
    for (const p of s.points) {
      const out = (range?.high !== undefined && p.v > range.high) || (range?.low !== undefined && p.v < range.low);
      svg.append(SVG('circle', { class: `pt ${cls}${out ? ' out' : ''}`, cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: out ? 5 : 4 },
        SVG('title', {}, `${s.name}: ${p.v} ${s.unit} on ${fmtDateTime(effective(p.o))}`)));
    }
  });
  if (series.length > 1) series.forEach((s, i) => {
    svg.append(SVG('text', { class: `legend s${i % 4}`, x: L + 8 + i * 200, y: T + 12 }, `● ${s.name}`));
  });
  return svg;
}

let dialog;
export function openTrend(observations, key, label) {
  const data = buildSeries(observations, key);
  if (!dialog) {
    dialog = h('dialog', { id: 'trend', class: 'wide', 'aria-labelledby': 'trend-title' });
    document.body.append(dialog);
  }
  while (dialog.firstChild) dialog.firstChild.remove();
  const unit = data.series[0]?.unit || '';
  const title = `${label}${unit ? ` (${unit})` : ''}`;
  const close = h('button', { type: 'button', class: 'close', onclick: () => dialog.close() }, 'Close');
  dialog.append(h('div', { class: 'dialog-head' }, h('h2', { id: 'trend-title' }, `Trend: ${title}`), close));
  if (!data.series.length) {
    dialog.append(h('p', {}, 'There are no numeric values to plot.'));
  } else {
    dialog.append(plot(data, `${title} over time, ${data.observations.length} results from ${fmtDate(effective(data.observations[0]))} to ${fmtDate(effective(data.observations.at(-1)))}`));
    if (data.range) dialog.append(h('p', { class: 'muted', id: 'trend-range' },
      `Reference range: ${data.range.low ?? ''}${data.range.low !== undefined && data.range.high !== undefined ? '–' : data.range.high !== undefined ? 'up to ' : ' or more'}${data.range.high ?? ''} ${unit}`));
    dialog.append(h('table', { class: 'values' },
      h('caption', { class: 'sr' }, `${title}: values`),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Date'), data.series.map((s) => h('th', { scope: 'col' }, s.name)))),
      h('tbody', {}, [...data.observations].reverse().map((o) => h('tr', {},
        h('th', { scope: 'row' }, fmtDateTime(effective(o))),
        data.series.map((s) => {
          const p = s.points.find((q) => q.o === o);
          return h('td', {}, p ? String(p.v) : '');
        }))))));
  }
  dialog.showModal();
  close.focus();
}
