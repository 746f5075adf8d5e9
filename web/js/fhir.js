// fhir.js - the app's only way to the data: the public FHIR API at /fhir,
// with the access token from the sign-in (auth.js). No private back door.

import { accessToken, onUnauthorized } from './auth.js';

export const BASE = '/fhir';

// An answer that was not 2xx; issues from its OperationOutcome, each with
// the FHIRPath location it names (expression, or the older location).
export class FhirError extends Error {
  constructor(status, outcome, fallback) {
    const issues = (outcome && outcome.resourceType === 'OperationOutcome' && outcome.issue) || [];
    const msg = issues.map((i) => i.diagnostics || i.details?.text || i.code).filter(Boolean).join('; ');
    super(msg || fallback || `the server answered ${status}`);
    this.status = status;
    this.issues = issues.map((i) => ({
      severity: i.severity,
      code: i.code,
      message: i.diagnostics || i.details?.text || i.code,
      where: (i.expression && i.expression[0]) || (i.location && i.location[0]) || '',
    }));
  }
}

export class NetworkError extends Error {}

async function request(method, path, body, headers = {}) {
  const url = path.startsWith('http') || path.startsWith('/') ? path : `${BASE}/${path}`;
  const h = { Accept: 'application/fhir+json', ...headers };
  const tok = await accessToken();
  if (tok) h.Authorization = `Bearer ${tok}`;
  if (body !== undefined) h['Content-Type'] = 'application/fhir+json';
  let res;
  try {
    res = await fetch(url, {
      method, headers: h, body: body === undefined ? undefined : JSON.stringify(body),
      referrerPolicy: 'same-origin', credentials: 'same-origin', cache: 'no-store',
    });
  } catch (e) {
    throw new NetworkError('the server cannot be reached; nothing was lost, try again');
  }
  if (res.status === 401) {
    onUnauthorized();
    throw new FhirError(401, null, 'your session has ended; sign in again');
  }
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
  if (!res.ok) throw new FhirError(res.status, json);
  return json;
}

export const get = (path) => request('GET', path);
export const create = (type, res) => request('POST', type, res);
export const update = (res) => request('PUT', `${res.resourceType}/${res.id}`, res);
export const remove = (type, id) => request('DELETE', `${type}/${id}`);

// Every entry of a search, at most maxPages pages. When the first page
// gives the total and its next link pages by _offset, the other pages are
// fetched in parallel (a long chart is several pages of 1000).
export async function searchAll(path, maxPages = 20) {
  const resources = (b) => (b.entry || []).map((e) => e.resource)
    .filter((r) => r && r.resourceType !== 'OperationOutcome');
  const first = await get(path);
  const out = resources(first);
  const nextOf = (b) => {
    const l = (b.link || []).find((x) => x.relation === 'next');
    return l ? l.url.replace(/^https?:\/\/[^/]+/, '') : null;
  };
  let url = nextOf(first);
  const size = out.length;
  if (url && typeof first.total === 'number' && size > 0 && /[?&]_offset=\d+/.test(url)) {
    const urls = [];
    for (let o = size; o < first.total && urls.length < maxPages - 1; o += size)
      urls.push(url.replace(/([?&]_offset=)\d+/, `$1${o}`));
    const pages = await Promise.all(urls.map((u) => get(u)));
    for (const p of pages) out.push(...resources(p));
    return { resources: out, total: first.total };
  }
  for (let i = 1; url && i < maxPages; i++) {
    const b = await get(url);
    out.push(...resources(b));
    url = nextOf(b);
  }
  return { resources: out, total: first.total };
}

// What the server can search, from its CapabilityStatement (fetched once).
let caps;
export async function capabilities() {
  if (!caps) {
    caps = get('metadata').then((cs) => {
      const byType = {};
      for (const r of cs.rest?.[0]?.resource || [])
        byType[r.type] = new Set((r.searchParam || []).map((p) => p.name));
      return { byType, compartments: cs.rest?.[0]?.compartment || [] };
    }).catch((e) => { caps = undefined; throw e; });
  }
  return caps;
}

export async function supports(type, param) {
  const c = await capabilities();
  return !!c.byType[type] && c.byType[type].has(param);
}
