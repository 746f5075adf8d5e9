#!/usr/bin/env python3
"""
test_crud.py - the FHIR R4 RESTful API matrix against a real `ehr serve`:
create, read, vread, update (and update-as-create), delete, history at the
instance, type and system levels (_since, _count, next links), conditional
create/update/delete, If-Match, JSON Patch, Prefer, _format, _pretty, gzip,
CORS, the error statuses 404/405/406/415, and concurrent updates.

Expected values come from the specification (http://hl7.org/fhir/R4/http.html)
and from what the test itself sent, never from earlier server output.
"""
import calendar
import decimal
import email.utils
import gzip
import os
import re
import sys
import threading
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

srv = start_server(name='crud')
c = srv.client()

SYS = 'http://example.org/ehr-test/' + unique('crud')   # identifier system of this run
INTERACTIONS = {'read', 'vread', 'update', 'patch', 'delete', 'history-instance',
                'history-type', 'create', 'search-type'}


# --------------------------------------------------------------------------
# helpers

def patient(family, ident=None, **extra):
    p = {'resourceType': 'Patient', 'active': True,
         'name': [{'family': family, 'given': ['Test']}],
         'gender': 'female', 'birthDate': '1970-01-02'}
    if ident:
        p['identifier'] = [{'system': SYS, 'value': ident}]
    p.update(extra)
    return p


def http_date_seconds(value):
    check(value, 'missing Last-Modified header')
    try:
        d = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        d = None
    check(d is not None and d.tzinfo is not None,
          'Last-Modified %r is not an HTTP-date' % value)
    return calendar.timegm(d.utctimetuple())


def check_meta(res, vid, what='resource'):
    meta = res.get('meta')
    check(isinstance(meta, dict), '%s has no meta' % what)
    eq(meta.get('versionId'), vid, '%s meta.versionId' % what)
    parse_instant(meta.get('lastUpdated'))
    return meta


def check_version_headers(r, vid, res=None):
    """ETag W/"vid"; Last-Modified equal to meta.lastUpdated to the second."""
    eq(parse_etag_version(r.header('ETag')), vid, 'version in ETag')
    lm = http_date_seconds(r.header('Last-Modified'))
    if res is not None:
        lu = parse_instant(res['meta']['lastUpdated'])
        eq(lm, int(lu.to_integral_value(rounding=decimal.ROUND_FLOOR)),
           'Last-Modified (epoch seconds) vs meta.lastUpdated %s' % res['meta']['lastUpdated'])


def same_content(got, sent, what):
    """got equals sent apart from meta (and id, which the server assigns)."""
    g = {k: v for k, v in got.items() if k not in ('meta', 'id')}
    s = {k: v for k, v in sent.items() if k not in ('meta', 'id')}
    d = json_diff(s, g)
    check(d is None, '%s differs from what was sent: %s' % (what, d))


def create(res, headers=None, rtype='Patient'):
    """POST; checks 201 and Location; returns (id, vid, response)."""
    r = c.post('/fhir/' + rtype, json=res, headers=headers)
    expect_status(r, 201)
    _t, rid, vid = location_parts(r.header('Location'), rtype)
    return rid, vid, r


def read(rtype, rid, status=200):
    r = c.get('/fhir/%s/%s' % (rtype, rid))
    expect_status(r, status)
    return r


def read_json(rtype, rid):
    r = read(rtype, rid)
    res = expect_fhir_json(r)
    eq(res.get('resourceType'), rtype, 'resourceType')
    eq(res.get('id'), rid, 'id')
    return res, r


def put(rtype, rid, res, headers=None):
    body = dict(res)
    body['id'] = rid
    return c.put('/fhir/%s/%s' % (rtype, rid), json=body, headers=headers)


def search(query):
    """All entries of a search (following next links)."""
    pages = follow_pages(c, '/fhir/' + query)
    eq(pages[0].get('type'), 'searchset', 'Bundle.type of a search')
    out = []
    for p in pages:
        out.extend(bundle_entries(p))
    total = pages[0].get('total')
    if total is not None:
        eq(total, len(out), 'Bundle.total of %s vs the entries returned' % query)
    return out


def search_ids(query):
    ids = []
    for e in search(query):
        res = e.get('resource') or {}
        if (e.get('search') or {}).get('mode', 'match') == 'match':
            ids.append(res.get('id'))
    return ids


def history(path):
    """(pages, entries) of a history interaction, following next links."""
    pages = follow_pages(c, path)
    entries = []
    for p in pages:
        eq(p.get('type'), 'history', 'Bundle.type of %s' % path)
        entries.extend(bundle_entries(p))
    total = pages[0].get('total')
    if total is not None:
        eq(total, len(entries), 'Bundle.total of %s vs the entries returned' % path)
    return pages, entries


def entry_key(e):
    """(type, id, versionId or 'DELETE') of a history entry, checking that it
    has request and response (FHIR R4 3.1.0.4.5: history entries)."""
    req = e.get('request')
    check(isinstance(req, dict) and req.get('method') and req.get('url'),
          'history entry without request.method/url: %r' % e)
    check(req['method'] in ('POST', 'PUT', 'DELETE', 'PATCH'),
          'history entry request.method %r' % req['method'])
    resp = e.get('response')
    check(isinstance(resp, dict) and re.match(r'^[12]\d\d', str(resp.get('status', ''))),
          'history entry without a response.status (2xx): %r' % (resp,))
    res = e.get('resource')
    if req['method'] == 'DELETE':
        check(res is None, 'history entry of a delete carries a resource')
        parts = req['url'].split('?')[0].rstrip('/').split('/')
        check(len(parts) >= 2, 'delete entry request.url %r is not [type]/[id]' % req['url'])
        return (parts[-2], parts[-1], 'DELETE')
    check(isinstance(res, dict), 'history entry for %s without resource' % req['method'])
    return (res.get('resourceType'), res.get('id'), res.get('meta', {}).get('versionId'))


def lastupdated(res):
    return parse_instant(res['meta']['lastUpdated'])


def iso(t):
    """An instant for a query, at millisecond precision rounded down."""
    t = decimal.Decimal(t)
    secs = int(t.to_integral_value(rounding=decimal.ROUND_FLOOR))
    ms = int(((t - secs) * 1000).to_integral_value(rounding=decimal.ROUND_FLOOR))
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(secs)) + '.%03dZ' % ms


def capability():
    r = c.get('/fhir/metadata')
    expect_status(r, 200)
    return expect_fhir_json(r)


def cap_resource(rtype):
    cs = capability()
    for rest in cs.get('rest', []):
        for res in rest.get('resource', []):
            if res.get('type') == rtype:
                return res
    return None


# --------------------------------------------------------------------------
# capabilities

def t_metadata():
    cs = capability()
    eq(cs.get('resourceType'), 'CapabilityStatement', 'resourceType')
    check(str(cs.get('fhirVersion', '')).startswith('4.0'), 'fhirVersion %r is not 4.0.x' % cs.get('fhirVersion'))
    check(cs.get('kind') in ('instance', 'capability'), 'kind %r' % cs.get('kind'))
    fmts = cs.get('format') or []
    check(any('json' in f for f in fmts), 'format %r does not list JSON' % fmts)
    rest = cs.get('rest') or []
    check(rest and rest[0].get('mode') == 'server', 'rest[0].mode is not server')


def t_metadata_patient():
    res = cap_resource('Patient')
    check(res is not None, 'CapabilityStatement does not list Patient')
    got = {i.get('code') for i in res.get('interaction', [])}
    missing = INTERACTIONS - got
    check(not missing, 'Patient interactions missing: %s' % sorted(missing))
    check(res.get('versioning') in ('versioned', 'versioned-update'),
          'Patient versioning %r' % res.get('versioning'))
    check(res.get('readHistory') is True, 'readHistory is not true')
    check(res.get('updateCreate') is True, 'updateCreate is not true')
    check(res.get('conditionalCreate') is True, 'conditionalCreate is not true')
    check(res.get('conditionalUpdate') is True, 'conditionalUpdate is not true')
    check(res.get('conditionalDelete') in ('single', 'multiple'),
          'conditionalDelete %r' % res.get('conditionalDelete'))
    params = {p.get('name') for p in res.get('searchParam', [])}
    sysparams = set()
    for rest in capability().get('rest', []):
        sysparams |= {p.get('name') for p in rest.get('searchParam', [])}
    for p in ('identifier', '_id', '_lastUpdated'):
        check(p in params or p in sysparams, 'search parameter %s not listed' % p)


test_expect_success('metadata: GET /fhir/metadata answers a CapabilityStatement (R4, JSON, server)', t_metadata)
test_expect_success('metadata: Patient lists the interactions, versioning and conditional support', t_metadata_patient)


# --------------------------------------------------------------------------
# create / read / vread / update

state = {}


def t_create():
    sent = patient('Create', unique('create'))
    body = dict(sent, id='client-chosen-id-ignored',
                meta={'versionId': '42', 'lastUpdated': '2001-01-01T00:00:00Z',
                      'tag': [{'system': 'http://example.org/tags', 'code': 'kept'}]})
    t0 = time.time()
    rid, vid, r = create(body)
    t1 = time.time()
    check(rid != 'client-chosen-id-ignored', 'create kept the id sent in the body (SHALL ignore it)')
    eq(vid, '1', 'version in Location')
    check_version_headers(r, '1')
    if r.body:
        res = expect_fhir_json(r)
        eq(res.get('id'), rid, 'id in the response body vs Location')
        check_meta(res, '1', 'response body')
    res, r2 = read_json('Patient', rid)
    meta = check_meta(res, '1', 'read after create')
    lu = parse_instant(meta['lastUpdated'])
    check(t0 - 300 <= lu <= t1 + 300,
          'meta.lastUpdated %s is not the time of the create (client clock %s..%s); '
          'the lastUpdated sent was not ignored?' % (meta['lastUpdated'], iso(t0), iso(t1)))
    eq(meta.get('tag'), body['meta']['tag'], 'meta.tag (servers SHOULD keep other metadata)')
    same_content(res, sent, 'read after create')
    check_version_headers(r2, '1', res)
    state['p'] = rid
    state['p_sent'] = sent


def t_create_ids_unique():
    ids = []
    errors = []
    lock = threading.Lock()

    def worker(n):
        cl = srv.client()
        try:
            for i in range(20):
                r = cl.post('/fhir/Patient', json=patient('Many%d' % n))
                if r.status != 201:
                    raise TestFailure('create answered %d' % r.status)
                with lock:
                    ids.append(location_parts(r.header('Location'), 'Patient')[1])
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            cl.close()
    ts = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    check(not errors, 'concurrent creates failed: %s' % errors[:3])
    eq(len(set(ids)), 80, 'distinct ids from 80 concurrent creates')
    for rid in ids[:10]:
        read('Patient', rid)


def t_read():
    rid = state['p']
    r = read('Patient', rid)
    res = expect_fhir_json(r)
    check(r.content_type() == 'application/fhir+json',
          'Content-Type %r is not application/fhir+json' % r.header('Content-Type'))
    check_version_headers(r, '1', res)
    same_content(res, state['p_sent'], 'read')


def t_read_missing():
    expect_outcome(c.get('/fhir/Patient/no-such-id-%d' % os.getpid()), 404)


def t_update_vread():
    rid = state['p']
    v1, _ = read_json('Patient', rid)
    sent = patient('Updated', state['p_sent']['identifier'][0]['value'])
    r = put('Patient', rid, sent)
    expect_status(r, 200)
    check_version_headers(r, '2')
    v2, r2 = read_json('Patient', rid)
    check_meta(v2, '2', 'read after update')
    check_version_headers(r2, '2', v2)
    same_content(v2, sent, 'read after update')
    check(lastupdated(v2) >= lastupdated(v1), 'lastUpdated went backwards on update')
    r = c.get('/fhir/Patient/%s/_history/1' % rid)
    expect_status(r, 200)
    old = expect_fhir_json(r)
    check_meta(old, '1', 'vread 1')
    check_version_headers(r, '1', old)
    same_content(old, state['p_sent'], 'vread of version 1')
    r = c.get('/fhir/Patient/%s/_history/2' % rid)
    expect_status(r, 200)
    same_content(expect_fhir_json(r), sent, 'vread of version 2')
    expect_outcome(c.get('/fhir/Patient/%s/_history/99' % rid), 404)


def t_update_create():
    rid = unique('uc')
    sent = patient('Client', unique('uc'))
    r = put('Patient', rid, sent)
    expect_status(r, 201)
    eq(location_parts(r.header('Location'), 'Patient')[1:], (rid, '1'), '(id, version) in Location')
    check_version_headers(r, '1')
    res, _ = read_json('Patient', rid)
    check_meta(res, '1')
    same_content(res, sent, 'read after update-as-create')


def t_delete():
    sent = patient('Delete', unique('del'))
    rid, _, _ = create(sent)
    r = c.delete('/fhir/Patient/%s' % rid)
    expect_status(r, 200, 204)
    if r.status == 204:
        eq(r.body, b'', '204 body')
    expect_outcome(c.get('/fhir/Patient/%s' % rid), 410)
    if r.header('ETag'):
        # servers MAY give the delete's version; a vread of it answers 410 (R4 3.1.0.3)
        dv = parse_etag_version(r.header('ETag'))
        check(dv != '1', 'the delete reports the version it deleted (W/"1"), not a new one')
        expect_outcome(c.get('/fhir/Patient/%s/_history/%s' % (rid, dv)), 410)
    r = c.get('/fhir/Patient/%s/_history/1' % rid)
    expect_status(r, 200)
    same_content(expect_fhir_json(r), sent, 'vread of the version before the delete')
    eq(search_ids('Patient?_id=%s' % rid), [], 'search by _id after delete')
    eq(search_ids('Patient?identifier=%s' % quote(SYS + '|' + sent['identifier'][0]['value'])),
       [], 'search by identifier after delete')
    # deleting again has no effect and answers 200 or 204 (R4 3.1.0.7)
    expect_status(c.delete('/fhir/Patient/%s' % rid), 200, 204)
    expect_outcome(c.get('/fhir/Patient/%s' % rid), 410)
    state['deleted'] = rid


def t_delete_missing():
    r = c.delete('/fhir/Patient/never-existed-%d' % os.getpid())
    expect_status(r, 200, 204)


def t_revive():
    rid = state['deleted']
    _pages, entries = history('/fhir/Patient/%s/_history' % rid)
    sent = patient('Revived')
    r = put('Patient', rid, sent)
    expect_status(r, 200, 201)
    vid = parse_etag_version(r.header('ETag'))
    check(vid.isdigit() and int(vid) > 1, 'version after revival %r is not > 1' % vid)
    res, _ = read_json('Patient', rid)
    check_meta(res, vid)
    same_content(res, sent, 'read after revival')
    _p, after = history('/fhir/Patient/%s/_history' % rid)
    eq(len(after), len(entries) + 1, 'history entries after revival')
    eq(entry_key(after[0]), ('Patient', rid, vid), 'newest history entry')


test_expect_success('create: POST answers 201, Location .../_history/1, ETag W/"1", Last-Modified; id, versionId, lastUpdated assigned by the server', t_create)
test_expect_success('create: 80 concurrent creates get 80 distinct ids', t_create_ids_unique)
test_expect_success('read: 200, application/fhir+json, ETag, Last-Modified, content as sent', t_read)
test_expect_success('read: an unknown id answers 404 with an OperationOutcome', t_read_missing)
test_expect_success('update: PUT answers 200 with version 2; vread returns each version; unknown version 404', t_update_vread)
test_expect_success('update-as-create: PUT with a new client id answers 201 and Location .../_history/1', t_update_create)


def t_ids_per_type():
    rid = unique('same')
    expect_status(put('Patient', rid, patient('SameId')), 201)
    expect_status(put('Practitioner', rid, {'resourceType': 'Practitioner', 'name': [{'family': 'Same id'}]}), 201)
    expect_status(put('Patient', rid.upper(), patient('UpperId')), 201)
    eq(read_json('Patient', rid)[0]['name'][0]['family'], 'SameId', 'Patient/%s' % rid)
    eq(read_json('Practitioner', rid)[0]['name'][0]['family'], 'Same id', 'Practitioner/%s' % rid)
    eq(read_json('Patient', rid.upper())[0]['name'][0]['family'], 'UpperId', 'Patient/%s' % rid.upper())
    for t, i in (('Patient', rid), ('Practitioner', rid), ('Patient', rid.upper())):
        eq(read_json(t, i)[0]['meta']['versionId'], '1', 'version of %s/%s' % (t, i))


def t_text_exact():
    # JSON escapes and non-ASCII text come back as the same strings
    odd = r'Zo\u00eb \u674e \ud83d\ude00 \"quoted\" back\\slash <\/script> tab\tnewline\n'
    body = (r'{"resourceType":"Patient","name":[{"family":"%s","given":["\u00c5sa", "Ærø 😀"]}],'
            r'"address":[{"line":["%s"],"city":"K\u00f8benhavn"}]}' % (odd, odd))
    want = loads_exact(body)
    rid, _, _ = create(want)
    r = c.post('/fhir/Patient', body=body.encode('utf-8'), content_type='application/fhir+json')
    expect_status(r, 201)
    rid2 = location_parts(r.header('Location'), 'Patient')[1]
    for i in (rid, rid2):
        res, _ = read_json('Patient', i)
        same_content(res, want, 'read of Patient/%s with escapes and non-ASCII text' % i)


test_expect_success('ids: the same id in two types, and ids differing in case, are distinct resources', t_ids_per_type)
test_expect_success('strings: escapes, non-ASCII and astral characters come back unchanged', t_text_exact)
test_expect_success('delete: 200/204, then read 410 Gone, old versions readable, not found by search; deleting again 200/204', t_delete)
test_expect_success('delete: an id that never existed answers 200 or 204', t_delete_missing)
test_expect_success('delete: a later PUT brings the resource back with a new version', t_revive)


# --------------------------------------------------------------------------
# history

def make_versions(n, rtype='Patient', family='Hist'):
    """Create a resource and update it to n versions; returns (id, [resource per version])."""
    sent = patient(family + '1') if rtype == 'Patient' else {'resourceType': rtype, 'name': family + '1'}
    rid, _, _ = create(sent, rtype=rtype)
    versions = [read_json(rtype, rid)[0]]
    for i in range(2, n + 1):
        body = patient(family + str(i)) if rtype == 'Patient' else {'resourceType': rtype, 'name': family + str(i)}
        expect_status(put(rtype, rid, body), 200)
        versions.append(read_json(rtype, rid)[0])
    for i, v in enumerate(versions):
        eq(v['meta']['versionId'], str(i + 1), 'versionId after %d writes' % (i + 1))
    return rid, versions


def t_history_instance():
    rid, versions = make_versions(3)
    expect_status(c.delete('/fhir/Patient/%s' % rid), 200, 204)
    pages, entries = history('/fhir/Patient/%s/_history' % rid)
    eq(len(entries), 4, 'entries in the instance history (3 versions and a delete)')
    keys = [entry_key(e) for e in entries]
    eq(keys[0][2], 'DELETE', 'newest entry (the delete)')
    eq(keys[0][:2], ('Patient', rid), 'delete entry target')
    eq([k[2] for k in keys[1:]], ['3', '2', '1'], 'versions, newest first')
    eq(entries[-1]['request']['method'], 'POST', 'request.method of the create')
    for e in entries[1:-1]:
        eq(e['request']['method'], 'PUT', 'request.method of an update')
    for e, v in zip(entries[1:], reversed(versions)):
        d = json_diff(v, e['resource'])
        check(d is None, 'history entry of version %s differs from its read: %s' % (v['meta']['versionId'], d))


def t_history_count():
    rid, versions = make_versions(5, family='Paged')
    pages, entries = history('/fhir/Patient/%s/_history?_count=2' % rid)
    check(len(pages) == 3, 'expected 3 pages of at most 2 entries for 5 versions, got %d' % len(pages))
    for p in pages:
        check(len(bundle_entries(p)) <= 2, 'a page has %d entries with _count=2' % len(bundle_entries(p)))
    eq([entry_key(e)[2] for e in entries], ['5', '4', '3', '2', '1'], 'versions over all pages')
    check(not any(l.get('relation') == 'next' for l in pages[-1].get('link', [])),
          'the last page has a next link')


def t_history_since():
    rid, versions = make_versions(4, family='Since')
    times = [lastupdated(v) for v in versions]
    since = versions[2]['meta']['lastUpdated']
    t = parse_instant(since)
    want = [v['meta']['versionId'] for v, tv in zip(versions, times) if tv >= t]
    _p, entries = history('/fhir/Patient/%s/_history?_since=%s' % (rid, quote(since)))
    eq(sorted(entry_key(e)[2] for e in entries), sorted(want),
       'versions at or after _since=%s' % since)
    future = iso(time.time() + 86400)
    _p, entries = history('/fhir/Patient/%s/_history?_since=%s' % (rid, quote(future)))
    eq(len(entries), 0, 'entries with _since in the future')


def t_history_type():
    # Organization is written by this case only, so the expected set is exact.
    writes = []   # (key, lastUpdated or None for deletes)
    ids = []
    for i in range(3):
        rid, _, _ = create({'resourceType': 'Organization', 'name': 'Org %d' % i}, rtype='Organization')
        ids.append(rid)
        res, _ = read_json('Organization', rid)
        writes.append((('Organization', rid, '1'), lastupdated(res)))
    for v in (2, 3):
        expect_status(put('Organization', ids[0], {'resourceType': 'Organization', 'name': 'Org 0 v%d' % v}), 200)
        res, _ = read_json('Organization', ids[0])
        writes.append((('Organization', ids[0], str(v)), lastupdated(res)))
    expect_status(c.delete('/fhir/Organization/%s' % ids[1]), 200, 204)
    writes.append((('Organization', ids[1], 'DELETE'), None))
    pages, entries = history('/fhir/Organization/_history?_count=2')
    check(len(pages) >= 3, 'expected at least 3 pages with _count=2 for 6 entries, got %d' % len(pages))
    keys = [entry_key(e) for e in entries]
    eq(sorted(keys), sorted(k for k, _ in writes), 'type history entries')
    eq(len(keys), len(set(keys)), 'type history entries are distinct')
    stamps = [lastupdated(e['resource']) for e in entries if e.get('resource')]
    check(stamps == sorted(stamps, reverse=True), 'type history is not newest first')
    eq(keys[0], ('Organization', ids[1], 'DELETE'), 'newest type history entry (the delete)')
    since_t = writes[3][1]
    since = iso(since_t)   # millisecond precision, rounded down
    want = sorted(k for k, t in writes if t is None or t >= parse_instant(since))
    _p, entries = history('/fhir/Organization/_history?_since=%s' % quote(since))
    eq(sorted(entry_key(e) for e in entries), want, 'type history with _since=%s' % since)


def t_history_system():
    wrote = []
    rid, _, _ = create(patient('System'))
    wrote.append(('Patient', rid, '1'))
    oid, _, _ = create({'resourceType': 'Organization', 'name': 'System org'}, rtype='Organization')
    wrote.append(('Organization', oid, '1'))
    pid, _, _ = create({'resourceType': 'Practitioner', 'name': [{'family': 'Sys'}]}, rtype='Practitioner')
    wrote.append(('Practitioner', pid, '1'))
    expect_status(put('Practitioner', pid, {'resourceType': 'Practitioner', 'name': [{'family': 'Sys2'}]}), 200)
    wrote.append(('Practitioner', pid, '2'))
    first = read_json('Patient', rid)[0]['meta']['lastUpdated']
    since = iso(parse_instant(first))
    pages, entries = history('/fhir/_history?_since=%s&_count=3' % quote(since))
    keys = [entry_key(e) for e in entries]
    for w in wrote:
        check(w in keys, '%s/%s version %s missing from the system history' % w)
    eq(len(keys), len(set(keys)), 'system history entries are distinct')
    for e in entries:
        if e.get('resource'):
            check(lastupdated(e['resource']) >= parse_instant(since),
                  'entry %s is older than _since' % (entry_key(e),))
    check(all(len(bundle_entries(p)) <= 3 for p in pages), 'a page exceeds _count=3')
    _p, everything = history('/fhir/_history')
    check(len(everything) >= len(keys), 'the full system history is shorter than a _since slice')


test_expect_success('history: instance history lists every version newest first with request/response; a delete is an entry without resource', t_history_instance)
test_expect_success('history: _count pages, next links reach every version exactly once', t_history_count)
test_expect_success('history: _since returns the versions at or after the instant; a future _since none', t_history_since)
test_expect_success('history: type history lists exactly the writes of that type; paging and _since', t_history_type)
test_expect_success('history: system history includes writes of every type; _since and _count', t_history_system)


# --------------------------------------------------------------------------
# search (the parameters conditional interactions rely on)

def t_search_identifier():
    v = unique('srch')
    a, _, _ = create(patient('SearchA', v))
    b, _, _ = create(patient('SearchB', v))
    create(patient('SearchOther', v + '-other'))
    create(dict(patient('OtherSystem'), identifier=[{'system': SYS + '-x', 'value': v}]))
    eq(sorted(search_ids('Patient?identifier=%s' % quote(SYS + '|' + v))), sorted([a, b]),
       'identifier=system|value')
    got = search_ids('Patient?identifier=%s' % quote(v))
    eq(len(got), 3, 'identifier=value matches that value in any system (%r)' % got)
    entries = search('Patient?identifier=%s' % quote(SYS + '|' + v))
    for e in entries:
        check((e.get('fullUrl') or '').endswith('/Patient/' + e['resource']['id']),
              'entry fullUrl %r does not end with Patient/{id}' % e.get('fullUrl'))


def t_search_id():
    a, _, _ = create(patient('IdA'))
    b, _, _ = create(patient('IdB'))
    eq(search_ids('Patient?_id=%s' % a), [a], '_id=a')
    eq(sorted(search_ids('Patient?_id=%s,%s' % (a, b))), sorted([a, b]), '_id=a,b')
    eq(search_ids('Patient?_id=no-such-id'), [], '_id of nothing')


def t_search_lastupdated():
    v = unique('lu')
    rid, _, _ = create(patient('Lu', v))
    lu = read_json('Patient', rid)[0]['meta']['lastUpdated']
    q = 'Patient?identifier=%s&_lastUpdated=' % quote(SYS + '|' + v)
    eq(search_ids(q + quote('ge' + lu)), [rid], '_lastUpdated=ge<its lastUpdated>')
    eq(search_ids(q + quote('lt' + lu)), [], '_lastUpdated=lt<its lastUpdated>')
    eq(search_ids(q + quote('gt' + iso(time.time() + 86400))), [], '_lastUpdated=gt<tomorrow>')


test_expect_success('search: identifier=system|value and identifier=value', t_search_identifier)
test_expect_success('search: _id, also with a comma list', t_search_id)
test_expect_success('search: _lastUpdated ge/lt/gt', t_search_lastupdated)


# --------------------------------------------------------------------------
# conditional interactions

def ident_query(v):
    return 'identifier=%s' % quote(SYS + '|' + v)


def count_ident(v):
    return len(search_ids('Patient?' + ident_query(v)))


def type_history_count(rtype='Patient'):
    return len(history('/fhir/%s/_history' % rtype)[1])


def t_ccreate_none():
    v = unique('cc0')
    r = c.post('/fhir/Patient', json=patient('Cond', v),
               headers={'If-None-Exist': 'identifier=%s|%s' % (SYS, v)})
    expect_status(r, 201)
    location_parts(r.header('Location'), 'Patient')
    eq(count_ident(v), 1, 'patients with the identifier after conditional create')


def t_ccreate_one():
    v = unique('cc1')
    rid, _, _ = create(patient('Cond', v))
    before = type_history_count()
    r = c.post('/fhir/Patient', json=patient('CondAgain', v),
               headers={'If-None-Exist': 'identifier=%s|%s' % (SYS, v)})
    expect_status(r, 200)
    eq(count_ident(v), 1, 'patients with the identifier')
    eq(type_history_count(), before, 'Patient history entries (nothing written)')
    res, _ = read_json('Patient', rid)
    eq(res['meta']['versionId'], '1', 'version of the matching patient')
    eq(res['name'][0]['family'], 'Cond', 'the matching patient is unchanged')


def t_ccreate_many():
    v = unique('cc2')
    create(patient('Dup1', v))
    create(patient('Dup2', v))
    before = type_history_count()
    r = c.post('/fhir/Patient', json=patient('Dup3', v),
               headers={'If-None-Exist': ident_query(v)})
    expect_outcome(r, 412)
    eq(count_ident(v), 2, 'patients with the identifier')
    eq(type_history_count(), before, 'Patient history entries (nothing written)')


def t_cupdate_none():
    v = unique('cu0')
    r = c.put('/fhir/Patient?' + ident_query(v), json=patient('CondUp', v))
    expect_status(r, 201)
    _t, rid, vid = location_parts(r.header('Location'), 'Patient')
    eq(vid, '1', 'version of the created patient')
    eq(search_ids('Patient?' + ident_query(v)), [rid], 'search after conditional update-as-create')
    state['cu'] = (v, rid)


def t_cupdate_one():
    v, rid = state['cu']
    sent = patient('CondUpdated', v)
    r = c.put('/fhir/Patient?' + ident_query(v), json=sent)
    expect_status(r, 200)
    eq(parse_etag_version(r.header('ETag')), '2', 'version in ETag')
    res, _ = read_json('Patient', rid)
    check_meta(res, '2')
    same_content(res, sent, 'read after conditional update')
    eq(count_ident(v), 1, 'patients with the identifier')


def t_cupdate_many():
    v = unique('cu2')
    a, _, _ = create(patient('Two1', v))
    b, _, _ = create(patient('Two2', v))
    r = c.put('/fhir/Patient?' + ident_query(v), json=patient('Two3', v))
    expect_outcome(r, 412)
    for rid, fam in ((a, 'Two1'), (b, 'Two2')):
        res, _ = read_json('Patient', rid)
        eq((res['meta']['versionId'], res['name'][0]['family']), ('1', fam), 'unchanged patient %s' % rid)
    eq(count_ident(v), 2, 'patients with the identifier')


def t_cdelete_one():
    v = unique('cd1')
    rid, _, _ = create(patient('CondDel', v))
    keep, _, _ = create(patient('Keep', v + '-keep'))
    r = c.delete('/fhir/Patient?' + ident_query(v))
    expect_status(r, 200, 204)
    expect_outcome(c.get('/fhir/Patient/%s' % rid), 410)
    read('Patient', keep)


def t_cdelete_none():
    before = type_history_count()
    r = c.delete('/fhir/Patient?' + ident_query(unique('cd0')))
    expect_status(r, 200, 204)
    eq(type_history_count(), before, 'Patient history entries')


def t_cdelete_many():
    v = unique('cd2')
    a, _, _ = create(patient('Many1', v))
    b, _, _ = create(patient('Many2', v))
    mode = (cap_resource('Patient') or {}).get('conditionalDelete')
    r = c.delete('/fhir/Patient?' + ident_query(v))
    if r.status == 412:
        expect_outcome(r, 412)
        check(mode != 'multiple', 'CapabilityStatement says conditionalDelete=multiple, but 412')
        read('Patient', a)
        read('Patient', b)
    else:
        expect_status(r, 200, 204)
        check(mode != 'single', 'CapabilityStatement says conditionalDelete=single, but %d' % r.status)
        expect_outcome(c.get('/fhir/Patient/%s' % a), 410)
        expect_outcome(c.get('/fhir/Patient/%s' % b), 410)


test_expect_success('conditional create: If-None-Exist with no match creates (201)', t_ccreate_none)
test_expect_success('conditional create: one match answers 200 and writes nothing', t_ccreate_one)
test_expect_success('conditional create: two matches answer 412 and write nothing', t_ccreate_many)
test_expect_success('conditional update: no match creates (201)', t_cupdate_none)
test_expect_success('conditional update: one match updates it (200, version 2)', t_cupdate_one)
test_expect_success('conditional update: two matches answer 412 and change nothing', t_cupdate_many)
test_expect_success('conditional delete: one match deletes it, others stay', t_cdelete_one)
test_expect_success('conditional delete: no match answers 200 or 204 and writes nothing', t_cdelete_none)
test_expect_success('conditional delete: two matches delete both, or answer 412 and delete none (as the CapabilityStatement says)', t_cdelete_many)


# --------------------------------------------------------------------------
# If-Match and JSON Patch

def t_if_match():
    rid, _, _ = create(patient('Lock1'))
    r = put('Patient', rid, patient('Lock2'), headers={'If-Match': 'W/"1"'})
    expect_status(r, 200)
    eq(parse_etag_version(r.header('ETag')), '2', 'version after a matching If-Match')
    r = put('Patient', rid, patient('Lock3'), headers={'If-Match': 'W/"1"'})
    expect_outcome(r, 412)
    res, _ = read_json('Patient', rid)
    eq((res['meta']['versionId'], res['name'][0]['family']), ('2', 'Lock2'), 'patient after a stale If-Match')
    r = c.patch('/fhir/Patient/%s' % rid, [{'op': 'replace', 'path': '/gender', 'value': 'male'}],
                headers={'If-Match': 'W/"1"'})
    expect_outcome(r, 412)
    res, _ = read_json('Patient', rid)
    eq((res['meta']['versionId'], res['gender']), ('2', 'female'), 'patient after a stale If-Match patch')


def t_patch():
    sent = patient('Old', unique('patch'))
    rid, _, _ = create(sent)
    ops = [
        {'op': 'test', 'path': '/gender', 'value': 'female'},
        {'op': 'replace', 'path': '/name/0/family', 'value': 'New'},
        {'op': 'add', 'path': '/name/0/given/-', 'value': 'Added'},
        {'op': 'add', 'path': '/telecom', 'value': [{'system': 'phone', 'value': '555-0100'}]},
        {'op': 'remove', 'path': '/birthDate'},
    ]
    r = c.patch('/fhir/Patient/%s' % rid, ops, headers={'If-Match': 'W/"1"'})
    expect_status(r, 200)
    eq(parse_etag_version(r.header('ETag')), '2', 'version after patch')
    want = dict(sent)
    want['name'] = [{'family': 'New', 'given': ['Test', 'Added']}]
    want['telecom'] = [{'system': 'phone', 'value': '555-0100'}]
    del want['birthDate']
    res, _ = read_json('Patient', rid)
    check_meta(res, '2')
    same_content(res, want, 'read after patch')
    if r.body:
        same_content(expect_fhir_json(r), want, 'patch response body')
    state['patched'] = (rid, want)


def t_patch_test_fails():
    rid, want = state['patched']
    ops = [{'op': 'replace', 'path': '/name/0/family', 'value': 'Nope'},
           {'op': 'test', 'path': '/gender', 'value': 'male'}]
    r = c.patch('/fhir/Patient/%s' % rid, ops)
    expect_outcome(r, (422, 409, 412))
    res, _ = read_json('Patient', rid)
    check_meta(res, '2')
    same_content(res, want, 'read after a failed patch')


def t_patch_missing():
    r = c.patch('/fhir/Patient/no-such-patient-%d' % os.getpid(),
                [{'op': 'replace', 'path': '/gender', 'value': 'male'}])
    expect_outcome(r, 404)


test_expect_success('If-Match: the current version updates (200); a stale one answers 412 and changes nothing (PUT and PATCH)', t_if_match)
test_expect_success('JSON Patch: test, replace, add, remove apply in order (200, version 2)', t_patch)
test_expect_success('JSON Patch: a failing test op answers 422/409/412 and leaves the resource unchanged', t_patch_test_fails)
test_expect_success('JSON Patch: an unknown id answers 404', t_patch_missing)


# --------------------------------------------------------------------------
# Prefer

def t_prefer_minimal():
    v = unique('min')
    r = c.post('/fhir/Patient', json=patient('Minimal', v), headers={'Prefer': 'return=minimal'})
    expect_status(r, 201)
    eq(r.body, b'', 'body with return=minimal')
    _t, rid, vid = location_parts(r.header('Location'), 'Patient')
    eq(parse_etag_version(r.header('ETag')), '1', 'ETag with return=minimal')
    http_date_seconds(r.header('Last-Modified'))
    r = put('Patient', rid, patient('Minimal2', v), headers={'Prefer': 'return=minimal'})
    expect_status(r, 200, 204)
    eq(r.body, b'', 'update body with return=minimal')
    eq(parse_etag_version(r.header('ETag')), '2', 'ETag of the update with return=minimal')


def t_prefer_representation():
    sent = patient('Repr')
    r = c.post('/fhir/Patient', json=sent, headers={'Prefer': 'return=representation'})
    expect_status(r, 201)
    res = expect_fhir_json(r)
    _t, rid, _v = location_parts(r.header('Location'), 'Patient')
    eq(res.get('id'), rid, 'id in the body')
    check_meta(res, '1', 'body')
    same_content(res, sent, 'representation')
    r = put('Patient', rid, patient('Repr2'), headers={'Prefer': 'return=representation'})
    expect_status(r, 200)
    check_meta(expect_fhir_json(r), '2', 'update body')


def t_prefer_outcome():
    r = c.post('/fhir/Patient', json=patient('Outcome'), headers={'Prefer': 'return=OperationOutcome'})
    expect_status(r, 201)
    oo = expect_fhir_json(r)
    eq(oo.get('resourceType'), 'OperationOutcome', 'body with return=OperationOutcome')
    check(oo.get('issue'), 'OperationOutcome without issue (issue is 1..*)')
    check(not any(i.get('severity') in ('error', 'fatal') for i in oo['issue']),
          'a successful create reports an error issue')
    location_parts(r.header('Location'), 'Patient')


test_expect_success('Prefer: return=minimal gives an empty body with Location and ETag (create and update)', t_prefer_minimal)
test_expect_success('Prefer: return=representation gives the stored resource', t_prefer_representation)
test_expect_success('Prefer: return=OperationOutcome gives an OperationOutcome', t_prefer_outcome)


# --------------------------------------------------------------------------
# formats, encodings, CORS

def t_format():
    rid = state['p']
    ref = read_json('Patient', rid)[0]
    for q, accept in (('_format=json', 'application/fhir+xml'), ('_format=application/fhir%2Bjson', 'text/html'),
                      ('_format=application/json', 'application/fhir+xml')):
        r = c.get('/fhir/Patient/%s?%s' % (rid, q), headers={'Accept': accept})
        expect_status(r, 200)
        check(r.content_type() in ('application/fhir+json', 'application/json'),
              '%s: Content-Type %r is not JSON (_format overrides Accept)' % (q, r.header('Content-Type')))
        d = json_diff(ref, r.json)
        check(d is None, '%s: body differs: %s' % (q, d))
    for accept in ('application/json', '*/*', 'application/fhir+json; q=0.9, text/csv; q=0.1'):
        r = c.get('/fhir/Patient/%s' % rid, headers={'Accept': accept})
        expect_status(r, 200)
        check(r.content_type() in ('application/fhir+json', 'application/json'),
              'Accept %s: Content-Type %r' % (accept, r.header('Content-Type')))
    r = c.get('/fhir/Patient/%s' % rid, headers={'Accept': None})
    expect_status(r, 200)
    check(json_diff(ref, r.json) is None, 'no Accept header: not the JSON resource')


def t_pretty():
    rid = state['p']
    compact = c.get('/fhir/Patient/%s?_pretty=false' % rid)
    pretty = c.get('/fhir/Patient/%s?_pretty=true' % rid)
    expect_status(compact, 200)
    expect_status(pretty, 200)
    lines = pretty.body.decode('utf-8').splitlines()
    check(len(lines) > 5 and any(l.startswith((' ', '\t')) for l in lines),
          '_pretty=true body is not indented over several lines')
    check(compact.body.count(b'\n') <= 1, '_pretty=false body spans several lines')
    check(json_diff(compact.json, pretty.json) is None, '_pretty changed the content')


def t_gzip():
    rid, _, _ = create(patient('Gzip', text={'status': 'generated', 'div': '<div xmlns="http://www.w3.org/1999/xhtml">'
                                                + ('<p>gzip me</p>' * 500) + '</div>'}))
    for path in ('/fhir/Patient/%s' % rid, '/fhir/metadata'):
        plain = c.get(path)
        expect_status(plain, 200)
        check((plain.header('Content-Encoding') or 'identity') == 'identity',
              '%s: Content-Encoding %r without Accept-Encoding' % (path, plain.header('Content-Encoding')))
        z = c.get(path, headers={'Accept-Encoding': 'gzip'})
        expect_status(z, 200)
        eq((z.header('Content-Encoding') or '').lower(), 'gzip', '%s: Content-Encoding' % path)
        try:
            body = gzip.decompress(z.body)
        except OSError as e:
            raise TestFailure('%s: body is not gzip: %s' % (path, e))
        check(len(z.body) < len(body), '%s: gzip body is not smaller' % path)
        d = json_diff(plain.json, loads_exact(body))
        check(d is None, '%s: gunzipped body differs: %s' % (path, d))
        vary = ','.join(z.header_all('Vary')).lower()
        if 'accept-encoding' not in vary and '*' not in vary:
            note('%s: gzip response without Vary: Accept-Encoding (caches may serve it to clients '
                 'that cannot gunzip)' % path)


ORIGIN = 'http://app.example.org:3000'


def t_cors():
    rid = state['p']
    r = c.get('/fhir/Patient/%s' % rid, headers={'Origin': ORIGIN})
    expect_status(r, 200)
    acao = r.header('Access-Control-Allow-Origin')
    check(acao in ('*', ORIGIN), 'Access-Control-Allow-Origin %r' % acao)
    r = c.post('/fhir/Patient', json=patient('Cors'), headers={'Origin': ORIGIN})
    expect_status(r, 201)
    check(r.header('Access-Control-Allow-Origin') in ('*', ORIGIN),
          'create: Access-Control-Allow-Origin %r' % r.header('Access-Control-Allow-Origin'))
    expose = {h.strip().lower() for h in ','.join(r.header_all('Access-Control-Expose-Headers')).split(',')}
    for h in ('location', 'etag'):
        check(h in expose or '*' in expose,
              'Access-Control-Expose-Headers %r lacks %s (a browser app cannot read it)' % (sorted(expose), h))


def t_cors_preflight():
    r = c.request('OPTIONS', '/fhir/Patient/%s' % state['p'],
                  headers={'Origin': ORIGIN, 'Access-Control-Request-Method': 'PUT',
                           'Access-Control-Request-Headers': 'content-type, if-match'})
    expect_status(r, 200, 204)
    check(r.header('Access-Control-Allow-Origin') in ('*', ORIGIN),
          'Access-Control-Allow-Origin %r' % r.header('Access-Control-Allow-Origin'))
    methods = ','.join(r.header_all('Access-Control-Allow-Methods')).upper()
    check('PUT' in methods or '*' in methods, 'Access-Control-Allow-Methods %r lacks PUT' % methods)
    hdrs = ','.join(r.header_all('Access-Control-Allow-Headers')).lower()
    for h in ('content-type', 'if-match'):
        check(h in hdrs or '*' in hdrs, 'Access-Control-Allow-Headers %r lacks %s' % (hdrs, h))


def t_xml():
    rid = state['p']
    for hdrs, q in (({'Accept': 'application/fhir+xml'}, ''), ({}, '?_format=xml')):
        r = c.get('/fhir/Patient/%s%s' % (rid, q), headers=hdrs)
        expect_status(r, 200)
        eq(r.content_type(), 'application/fhir+xml', 'Content-Type')
        try:
            root = ET.fromstring(r.body)
        except ET.ParseError as e:
            raise TestFailure('not well-formed XML: %s' % e)
        eq(root.tag, '{http://hl7.org/fhir}Patient', 'root element')
        idel = root.find('{http://hl7.org/fhir}id')
        check(idel is not None and idel.get('value') == rid, 'XML id element')
        fam = root.find('{http://hl7.org/fhir}name/{http://hl7.org/fhir}family')
        want = read_json('Patient', rid)[0]['name'][0]['family']
        check(fam is not None and fam.get('value') == want, 'XML name/family is not %r' % want)


test_expect_success('_format=json / application/fhir+json / application/json override Accept; JSON for */* and no Accept', t_format)
test_expect_success('_pretty=true indents, _pretty=false does not, same content', t_pretty)
test_expect_success('gzip: Accept-Encoding: gzip gives a smaller gzip body with the same JSON and Vary', t_gzip)
test_expect_success('CORS: requests with Origin get Access-Control-Allow-Origin; Location and ETag exposed', t_cors)
test_expect_success('CORS: a preflight OPTIONS allows PUT with Content-Type and If-Match', t_cors_preflight)
test_expect_success('XML: Accept: application/fhir+xml and _format=xml read the resource as FHIR XML', t_xml)


def t_xml_write():
    # a Patient written in FHIR XML (R4 XML form: value attributes, elements in
    # definition order) reads back as the equivalent JSON
    xml = ('<Patient xmlns="http://hl7.org/fhir"><active value="true"/>'
           '<name><family value="Xml-Writer"/><given value="Ana"/><given value="B"/></name>'
           '<birthDate value="1980-05-02"/></Patient>')
    r = c.post('/fhir/Patient', body=xml.encode(), content_type='application/fhir+xml')
    expect_status(r, 201)
    rid = r.header('Location').split('/Patient/')[1].split('/')[0]
    got = read_json('Patient', rid)[0]
    eq(got.get('active'), True, 'active')
    eq(got.get('name'), [{'family': 'Xml-Writer', 'given': ['Ana', 'B']}], 'name')
    eq(got.get('birthDate'), '1980-05-02', 'birthDate')
    # malformed XML and an unknown element are refused with an OperationOutcome
    for bad in (b'<Patient xmlns="http://hl7.org/fhir"><active value="true"/>',
                b'<Patient xmlns="http://hl7.org/fhir"><colour value="blue"/></Patient>'):
        r = c.post('/fhir/Patient', body=bad, content_type='application/fhir+xml')
        expect_status(r, 400)
        eq(r.json.get('resourceType'), 'OperationOutcome', 'error body')


test_expect_success('XML: a Patient POSTed as FHIR XML is stored and reads back as JSON; bad XML gets 400', t_xml_write)


# --------------------------------------------------------------------------
# error statuses

def t_404_type():
    for m, path in (('GET', '/fhir/Foo/1'), ('GET', '/fhir/Foo'), ('POST', '/fhir/Foo'),
                    ('GET', '/fhir/patient/%s' % state['p'])):
        body = {'resourceType': 'Foo'} if m == 'POST' else None
        expect_outcome(c.request(m, path, json=body), 404)


def t_405():
    rid = state['p']
    for m, path in (('POST', '/fhir/Patient/%s' % rid), ('DELETE', '/fhir/metadata'),
                    ('PUT', '/fhir/metadata')):
        body = patient('X', id=rid) if m != 'DELETE' else None
        r = c.request(m, path, json=body)
        expect_outcome(r, 405)
        check(r.header('Allow'), '%s %s: 405 without an Allow header (RFC 9110 15.5.6)' % (m, path))
    read('Patient', rid)


def t_406():
    r = c.get('/fhir/Patient/%s' % state['p'], headers={'Accept': 'text/csv'})
    expect_outcome(r, 406)


def t_415():
    before = type_history_count()
    r = c.post('/fhir/Patient', body=dumps(patient('Plain')), content_type='text/plain')
    expect_outcome(r, 415)
    r = c.put('/fhir/Patient/%s' % state['p'], body=dumps(patient('Plain', id=state['p'])),
              content_type='text/plain')
    expect_outcome(r, 415)
    eq(type_history_count(), before, 'Patient history entries')


test_expect_success('404: an unknown resource type (or wrong case) answers 404 with an OperationOutcome', t_404_type)
test_expect_success('405: a method the path does not support answers 405 with Allow and an OperationOutcome', t_405)
test_expect_success('406: Accept: text/csv answers 406 with an OperationOutcome', t_406)
test_expect_success('415: a body of Content-Type text/plain answers 415 with an OperationOutcome', t_415)


# --------------------------------------------------------------------------
# concurrency

def t_concurrent_if_match():
    rid, _, _ = create(patient('Race0'))
    clients = [srv.client(), srv.client()]
    rounds = 20
    try:
        for rnd in range(rounds):
            cur, r = read_json('Patient', rid)
            v = cur['meta']['versionId']
            barrier = threading.Barrier(2)
            results = [None, None]

            def go(i):
                body = patient('Race%d-%d' % (rnd, i), id=rid)
                barrier.wait()
                try:
                    results[i] = clients[i].put('/fhir/Patient/%s' % rid, json=body,
                                                headers={'If-Match': 'W/"%s"' % v})
                except Exception as e:  # noqa: BLE001
                    results[i] = e
            ts = [threading.Thread(target=go, args=(i,)) for i in (0, 1)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            for x in results:
                check(not isinstance(x, Exception), 'round %d: request failed: %r' % (rnd, x))
            statuses = sorted(x.status for x in results)
            eq(statuses, [200, 412], 'round %d: statuses of two updates with If-Match W/"%s"' % (rnd, v))
            winner = 0 if results[0].status == 200 else 1
            expect_outcome(results[1 - winner], 412)
            now, _ = read_json('Patient', rid)
            eq(now['meta']['versionId'], str(int(v) + 1), 'round %d: version after the race' % rnd)
            eq(now['name'][0]['family'], 'Race%d-%d' % (rnd, winner), 'round %d: the winner\'s content' % rnd)
    finally:
        for cl in clients:
            cl.close()
    _p, entries = history('/fhir/Patient/%s/_history' % rid)
    eq(len(entries), rounds + 1, 'history entries after %d races' % rounds)


test_expect_success('concurrency: two updates with the same If-Match give exactly one 200 and one 412 (20 rounds)', t_concurrent_if_match)


def race(n_threads, make_request):
    """Run make_request(client, i) on n_threads threads released together by
    a barrier; returns the responses (raises on transport errors)."""
    clients = [srv.client() for _ in range(n_threads)]
    barrier = threading.Barrier(n_threads)
    results = [None] * n_threads

    def go(i):
        barrier.wait()
        try:
            results[i] = make_request(clients[i], i)
        except Exception as e:  # noqa: BLE001
            results[i] = e
    ts = [threading.Thread(target=go, args=(i,)) for i in range(n_threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for cl in clients:
        cl.close()
    for x in results:
        check(not isinstance(x, Exception), 'request failed: %r' % (x,))
    return results


def t_concurrent_conditional_create():
    # If-None-Exist exists so that two clients cannot create duplicates (R4 3.1.0.8.1)
    for rnd in range(10):
        v = unique('ccrace')
        rs = race(4, lambda cl, i: cl.post('/fhir/Patient', json=patient('CcRace%d' % i, v),
                                           headers={'If-None-Exist': ident_query(v)}))
        statuses = sorted(r.status for r in rs)
        eq(statuses, [200, 200, 200, 201], 'round %d: statuses of 4 simultaneous conditional creates' % rnd)
        eq(count_ident(v), 1, 'round %d: patients with the identifier' % rnd)


def t_concurrent_update_create():
    for rnd in range(10):
        rid = unique('ucrace')
        rs = race(2, lambda cl, i: cl.put('/fhir/Patient/%s' % rid, json=patient('UcRace%d' % i, id=rid)))
        eq(sorted(r.status for r in rs), [200, 201], 'round %d: statuses of 2 simultaneous PUTs creating %s' % (rnd, rid))
        eq(sorted(parse_etag_version(r.header('ETag')) for r in rs), ['1', '2'], 'round %d: versions written' % rnd)
        res, _ = read_json('Patient', rid)
        eq(res['meta']['versionId'], '2', 'round %d: current version' % rnd)


def t_concurrent_conditional_update():
    for rnd in range(10):
        v = unique('curace')
        rs = race(2, lambda cl, i: cl.put('/fhir/Patient?' + ident_query(v), json=patient('CuRace%d' % i, v)))
        eq(sorted(r.status for r in rs), [200, 201], 'round %d: statuses of 2 simultaneous conditional updates' % rnd)
        eq(count_ident(v), 1, 'round %d: patients with the identifier' % rnd)


test_expect_success('concurrency: 4 simultaneous conditional creates make one resource (one 201, three 200; 10 rounds)', t_concurrent_conditional_create)
test_expect_success('concurrency: 2 simultaneous PUTs creating the same id give 201 and 200, versions 1 and 2 (10 rounds)', t_concurrent_update_create)
test_expect_success('concurrency: 2 simultaneous conditional updates with no match create one resource (10 rounds)', t_concurrent_conditional_update)

test_done()
