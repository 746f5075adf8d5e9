#!/usr/bin/env python3
"""
test_search.py - FHIR R4 search (http://hl7.org/fhir/R4/search.html) over
Synthea patients and US Core examples loaded into a real `ehr serve`.

Every expected result is computed here, by scanning the resources this test
loaded with a small Python model of the specification's rules (string
prefix without case and accents, token system|code, date ranges by
precision, quantity prefixes and units, references, chains, _has...),
never from the server's own answers.
"""
import datetime
import glob
import json
import os
import sys
import threading
import time
import unicodedata
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

SYNTHEA = os.path.join(DATA_DIR, 'synthea', 'r4-2019')
US_CORE = os.path.join(DATA_DIR, 'us-core', 'examples')
N_PATIENTS = int(os.environ.get('EHR_SEARCH_PATIENTS', '4'))


srv = start_server(name='search')
c = srv.client()

RES = {}        # (type, id) -> resource as loaded
LOADED = []     # in load order


# --------------------------------------------------------------------------
# loading: Synthea transaction bundles as PUTs, urn:uuid references made relative

def load_bundle(path):
    b = json.load(open(path, encoding='utf-8'))
    if not isinstance(b, dict):
        return []
    ids = {}
    for e in b['entry']:
        r = e['resource']
        if e.get('fullUrl', '').startswith('urn:uuid:'):
            ids[e['fullUrl']] = '%s/%s' % (r['resourceType'], e['fullUrl'][9:])

    def fix(x):
        if isinstance(x, dict):
            return {k: (ids.get(v, v) if k == 'reference' and isinstance(v, str) else fix(v))
                    for k, v in x.items()}
        if isinstance(x, list):
            return [fix(v) for v in x]
        return x
    out = []
    for e in b['entry']:
        r = fix(e['resource'])
        if e.get('fullUrl', '').startswith('urn:uuid:'):
            r['id'] = e['fullUrl'][9:]
        out.append(r)
    return out


def put(r):
    resp = c.put('/fhir/%s/%s' % (r['resourceType'], r['id']), json=r)
    if resp.status not in (200, 201):
        raise TestFailure('loading %s/%s: %s' % (r['resourceType'], r['id'], resp.describe(800)))
    RES[(r['resourceType'], r['id'])] = r
    LOADED.append(r)


def t_load():
    files = sorted(glob.glob(os.path.join(SYNTHEA, '*.json')))
    if not files:
        raise Skip('%s is absent' % SYNTHEA)
    # the smallest few bundles keep the sanitizer build quick
    info = [f for f in files if 'Information' in os.path.basename(f)]
    files = info + sorted((f for f in files if os.path.basename(f)[0].isupper() and
                           'Information' not in f and not os.path.basename(f).startswith('INDEX')),
                          key=os.path.getsize)[:N_PATIENTS]
    for f in files:
        for r in load_bundle(f):
            put(r)
    n_core = 0
    for f in sorted(glob.glob(os.path.join(US_CORE, '*.json'))):
        try:
            r = json.load(open(f, encoding='utf-8'))
        except ValueError:
            continue
        if r.get('resourceType') in ('Bundle',) or 'id' not in r:
            continue
        resp = c.put('/fhir/%s/%s' % (r['resourceType'], r['id']), json=r)
        if resp.status in (200, 201):
            RES[(r['resourceType'], r['id'])] = r
            LOADED.append(r)
            n_core += 1
    note('loaded %d resources (%d US Core examples)' % (len(LOADED), n_core))


test_expect_success('load Synthea patients and US Core examples', t_load)
if not LOADED:
    test_done()


# --------------------------------------------------------------------------
# the independent model

def of_type(t):
    return [r for r in LOADED if r['resourceType'] == t]


def norm(s):
    s = unicodedata.normalize('NFD', s)
    return ''.join(ch for ch in s if not unicodedata.combining(ch)).lower()


def name_parts(r):
    out = []
    for n in r.get('name', []):
        out += [n.get('family', '')] + n.get('given', []) + n.get('prefix', []) + \
            n.get('suffix', []) + [n.get('text', '')]
    return [p for p in out if p]


def codings(cc):
    if not cc:
        return []
    if isinstance(cc, list):
        return [x for c1 in cc for x in codings(c1)]
    return cc.get('coding', [])


def has_code(cc, system, code):
    return any((system is None or c1.get('system') == system) and c1.get('code') == code
               for c1 in codings(cc))


def ref_id(ref):
    return (ref or {}).get('reference', '')


def parse_dt(s):
    """(lo, hi) in seconds since the epoch, by precision."""
    def ts(y, mo=1, d=1, h=0, mi=0, sec=0.0, off=0):
        return (datetime.datetime(y, mo, d, h, mi, tzinfo=datetime.timezone.utc) -
                datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)).total_seconds() \
            + sec - off
    if len(s) == 4:
        return ts(int(s)), ts(int(s) + 1) - 1e-6
    if len(s) == 7:
        y, m = int(s[:4]), int(s[5:7])
        return ts(y, m), (ts(y + 1, 1) if m == 12 else ts(y, m + 1)) - 1e-6
    if len(s) == 10:
        lo = ts(int(s[:4]), int(s[5:7]), int(s[8:10]))
        return lo, lo + 86400 - 1e-6
    d, t = s.split('T')
    off = 0
    if t.endswith('Z'):
        t = t[:-1]
    elif '+' in t or '-' in t:
        sign = 1 if '+' in t else -1
        t, o = t.split('+' if sign == 1 else '-')
        off = sign * (int(o[:2]) * 3600 + int(o[3:5]) * 60)
    parts = t.split(':')
    sec = float(parts[2]) if len(parts) > 2 else 0.0
    lo = ts(int(d[:4]), int(d[5:7]), int(d[8:10]), int(parts[0]), int(parts[1]), sec, off)
    if len(parts) == 2:
        step = 60
    elif '.' in parts[2]:
        step = 10 ** -len(parts[2].split('.')[1])
    else:
        step = 1
    return lo, lo + step - 1e-6


def date_match(ranges, prefix, value):
    qlo, qhi = parse_dt(value)
    for lo, hi in ranges:
        ok = {
            'eq': lo >= qlo and hi <= qhi,
            'ne': not (lo >= qlo and hi <= qhi),
            'gt': hi > qhi,
            'lt': lo < qlo,
            'ge': hi >= qlo,
            'le': lo <= qhi,
            'sa': lo > qhi,
            'eb': hi < qlo,
        }[prefix]
        if ok:
            return True
    return False


def effective_ranges(r, *keys):
    out = []
    for k in keys:
        v = r.get(k)
        if isinstance(v, str):
            out.append(parse_dt(v))
        elif isinstance(v, dict) and ('start' in v or 'end' in v):
            lo = parse_dt(v['start'])[0] if 'start' in v else -1e18
            hi = parse_dt(v['end'])[1] if 'end' in v else 1e18
            out.append((lo, hi))
    return out


def ids(entries, mode='match'):
    return sorted('%s/%s' % (e['resource']['resourceType'], e['resource']['id'])
                  for e in entries if (e.get('search') or {}).get('mode') == mode)


def search_all(path):
    pages = follow_pages(c, '/fhir/' + path)
    eq(pages[0].get('type'), 'searchset', 'Bundle.type')
    entries = [e for p in pages for e in p.get('entry', [])]
    return pages, entries


def expect_ids(path, expected, what=None):
    pages, entries = search_all(path)
    got = ids(entries)
    exp = sorted('%s/%s' % (r['resourceType'], r['id']) for r in expected)
    if got != exp:
        missing = sorted(set(exp) - set(got))[:5]
        extra = sorted(set(got) - set(exp))[:5]
        raise TestFailure('%s: expected %d matches, got %d (missing %s, unexpected %s)' %
                          (what or path, len(exp), len(got), missing, extra))
    if 'total' in pages[0]:
        eq(pages[0]['total'], len(exp), 'Bundle.total of %s' % path)
    return entries


def q(s):
    return urllib.parse.quote(s, safe='')


PATIENTS = of_type('Patient')
OBS = of_type('Observation')
P0 = PATIENTS[0]
LOINC = 'http://loinc.org'


def common_code(rs, field='code'):
    counts = {}
    for r in rs:
        for c1 in codings(r.get(field)):
            k = (c1.get('system'), c1.get('code'))
            counts[k] = counts.get(k, 0) + 1
    return max(counts, key=lambda k: counts[k])


# --------------------------------------------------------------------------
# string

def t_string():
    fam = P0['name'][0]['family']
    for val in (fam[:3], fam[:3].upper(), fam):
        expect_ids('Patient?name=' + q(val),
                   [p for p in PATIENTS if any(norm(x).startswith(norm(val)) for x in name_parts(p))])
    expect_ids('Patient?family:exact=' + q(fam),
               [p for p in PATIENTS if any(n.get('family') == fam for n in p.get('name', []))])
    expect_ids('Patient?family:exact=' + q(fam.lower()),
               [p for p in PATIENTS if any(n.get('family') == fam.lower() for n in p.get('name', []))])
    mid = fam[1:4]
    expect_ids('Patient?name:contains=' + q(mid),
               [p for p in PATIENTS if any(norm(mid) in norm(x) for x in name_parts(p))])
    city = P0['address'][0]['city']
    expect_ids('Patient?address-city=' + q(city[:4]),
               [p for p in PATIENTS if any(norm(a.get('city', '')).startswith(norm(city[:4]))
                                           for a in p.get('address', []))])


def t_string_accents():
    r = c.post('/fhir/Patient', json={'resourceType': 'Patient', 'name': [{'family': 'Zoë-Ñúñez'}]})
    expect_status(r, 201)
    rid = r.json['id']
    for v in ('zoe', 'ZOË', 'zoe-nunez'):
        _, entries = search_all('Patient?family=' + q(v))
        check(rid in [e['resource']['id'] for e in entries], 'family=%s finds Zoë-Ñúñez' % v)
    c.delete('/fhir/Patient/' + rid)


test_expect_success('string: prefix without case, :exact, :contains, address parts', t_string)
test_expect_success('string: accents and case are ignored', t_string_accents)


# --------------------------------------------------------------------------
# token

def t_token():
    system, code = common_code(OBS)
    exp = [o for o in OBS if has_code(o.get('code'), system, code)]
    expect_ids('Observation?code=' + q('%s|%s' % (system, code)), exp)
    expect_ids('Observation?code=' + q(code), [o for o in OBS if has_code(o.get('code'), None, code)])
    expect_ids('Observation?code=' + q('|' + code),
               [o for o in OBS if any(c1.get('code') == code and 'system' not in c1
                                      for c1 in codings(o.get('code')))])
    expect_ids('Observation?code=' + q(system + '|'),
               [o for o in OBS if any(c1.get('system') == system for c1 in codings(o.get('code')))])
    expect_ids('Patient?gender=female', [p for p in PATIENTS if p.get('gender') == 'female'])
    expect_ids('Patient?gender:not=female', [p for p in PATIENTS if p.get('gender') != 'female'])
    expect_ids('Observation?status=final,amended',
               [o for o in OBS if o.get('status') in ('final', 'amended')])
    conds = of_type('Condition')
    expect_ids('Condition?clinical-status=active',
               [x for x in conds if has_code(x.get('clinicalStatus'), None, 'active')])
    ident = P0['identifier'][0]
    expect_ids('Patient?identifier=' + q('%s|%s' % (ident['system'], ident['value'])),
               [p for p in PATIENTS if any(i.get('system') == ident['system'] and
                                           i.get('value') == ident['value']
                                           for i in p.get('identifier', []))])
    phone = [t for t in P0.get('telecom', []) if t.get('system') == 'phone']
    if phone:
        expect_ids('Patient?phone=' + q(phone[0]['value']),
                   [p for p in PATIENTS if any(t.get('system') == 'phone' and
                                               t.get('value') == phone[0]['value']
                                               for t in p.get('telecom', []))])
    expect_ids('Patient?active=true', [p for p in PATIENTS if p.get('active') is True])


def t_token_text_oftype():
    system, code = common_code(OBS)
    disp = [c1.get('display') for o in OBS for c1 in codings(o.get('code'))
            if c1.get('code') == code and c1.get('display')][0]
    word = disp.split()[0]
    expect_ids('Observation?code:text=' + q(word),
               [o for o in OBS if any(norm(t).startswith(norm(word)) for t in
                                      [c1.get('display', '') for c1 in codings(o.get('code'))] +
                                      [o.get('code', {}).get('text', '')] if t)])
    typed = [(i, cd) for p in PATIENTS for i in p.get('identifier', [])
             for cd in (i.get('type') or {}).get('coding', [])]
    if typed:
        i, cd = typed[0]
        v = '%s|%s|%s' % (cd['system'], cd['code'], i['value'])
        expect_ids('Patient?identifier:of-type=' + q(v),
                   [p for p in PATIENTS if any(
                       x.get('value') == i['value'] and
                       any(y.get('system') == cd['system'] and y.get('code') == cd['code']
                           for y in (x.get('type') or {}).get('coding', []))
                       for x in p.get('identifier', []))])


test_expect_success('token: code, system|code, |code, system|, :not, booleans, identifiers, phone', t_token)
test_expect_success('token: :text and identifier:of-type', t_token_text_oftype)


# --------------------------------------------------------------------------
# date

def t_date():
    bd = P0['birthDate']
    for prefix in ('eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb'):
        for val in (bd[:4], bd[:7], bd):
            expect_ids('Patient?birthdate=%s%s' % (prefix, val),
                       [p for p in PATIENTS if 'birthDate' in p and
                        date_match([parse_dt(p['birthDate'])], prefix, val)],
                       'birthdate=%s%s' % (prefix, val))
    expect_ids('Patient?birthdate=' + bd, [p for p in PATIENTS if p.get('birthDate') == bd])
    encs = of_type('Encounter')
    e0 = encs[len(encs) // 2]
    day = e0['period']['start'][:10]
    for prefix in ('eq', 'ge', 'le', 'gt', 'lt', 'sa', 'eb'):
        expect_ids('Encounter?date=%s%s' % (prefix, day),
                   [e for e in encs if date_match(effective_ranges(e, 'period'), prefix, day)],
                   'Encounter?date=%s%s (Period)' % (prefix, day))
    year = OBS[0]['effectiveDateTime'][:4]
    expect_ids('Observation?date=ge%s&date=lt%d' % (year, int(year) + 2),
               [o for o in OBS if date_match(effective_ranges(o, 'effectiveDateTime', 'effectivePeriod'), 'ge', year)
                and date_match(effective_ranges(o, 'effectiveDateTime', 'effectivePeriod'), 'lt', str(int(year) + 2))])
    full = OBS[0]['effectiveDateTime']
    expect_ids('Observation?date=' + q(full),
               [o for o in OBS if date_match(effective_ranges(o, 'effectiveDateTime', 'effectivePeriod'), 'eq', full)])


test_expect_success('date: every prefix at year, month and day precision; Period; AND of two', t_date)


# --------------------------------------------------------------------------
# quantity and number

def qty(o):
    v = o.get('valueQuantity')
    return [v] if v else []


def t_quantity():
    system, code = common_code([o for o in OBS if 'valueQuantity' in o])
    sel = [o for o in OBS if has_code(o.get('code'), system, code) and 'valueQuantity' in o]
    vals = sorted(o['valueQuantity']['value'] for o in sel)
    mid = vals[len(vals) // 2]
    unit = sel[0]['valueQuantity'].get('code')
    base = 'Observation?code=%s&value-quantity=' % q('%s|%s' % (system, code))
    for prefix, fn in (('gt', lambda v: v > mid), ('lt', lambda v: v < mid),
                       ('ge', lambda v: v >= mid), ('le', lambda v: v <= mid)):
        expect_ids(base + prefix + repr(mid),
                   [o for o in sel if fn(o['valueQuantity']['value'])], 'value-quantity=%s%s' % (prefix, mid))
    expect_ids(base + q('gt%s|http://unitsofmeasure.org|%s' % (mid, unit)),
               [o for o in sel if o['valueQuantity']['value'] > mid and
                o['valueQuantity'].get('code') == unit])
    expect_ids(base + q('gt%s||no-such-unit' % mid), [])


def t_quantity_units():
    """mg/dL and g/L are one quantity (1 g/L = 100 mg/dL)."""
    sysid = 'urn:test:' + unique('units')
    made = []
    for v, u in ((150, 'mg/dL'), (1.2, 'g/L'), (2.0, 'g/L'), (90, 'mg/dL')):
        r = c.post('/fhir/Observation', json={
            'resourceType': 'Observation', 'status': 'final',
            'code': {'coding': [{'system': sysid, 'code': 'chol'}]},
            'valueQuantity': {'value': v, 'unit': u, 'system': 'http://unitsofmeasure.org', 'code': u}})
        expect_status(r, 201)
        made.append((r.json['id'], v if u == 'mg/dL' else v * 100))
    _, e = search_all('Observation?code=%s&value-quantity=%s' %
                      (q(sysid + '|chol'), q('gt1.3|http://unitsofmeasure.org|g/L')))
    eq(sorted(x['resource']['id'] for x in e), sorted(i for i, mg in made if mg > 130),
       'value-quantity=gt1.3 g/L over mg/dL and g/L values')
    _, e = search_all('Observation?code=%s&value-quantity=%s' %
                      (q(sysid + '|chol'), q('lt100|http://unitsofmeasure.org|mg/dL')))
    eq(sorted(x['resource']['id'] for x in e), sorted(i for i, mg in made if mg < 100),
       'value-quantity=lt100 mg/dL')
    _, e = search_all('Observation?code=%s&value-quantity=%s' % (q(sysid + '|chol'), q('1.2|http://unitsofmeasure.org|g/L')))
    eq(sorted(x['resource']['id'] for x in e), sorted(i for i, mg in made if abs(mg - 120) < 1),
       'value-quantity=1.2 g/L (implicit precision)')
    for i, _ in made:
        c.delete('/fhir/Observation/' + i)


def t_number():
    rs = [r for r in LOADED if r['resourceType'] == 'Immunization' and 'doseQuantity' in r]
    ras = of_type('RiskAssessment')
    sysid = 'urn:test:' + unique('num')
    made = {}
    for v in ('5.4', '5.35', '5.5', '100'):
        r = c.post('/fhir/RiskAssessment', json={
            'resourceType': 'RiskAssessment', 'status': 'final',
            'subject': {'reference': 'Patient/' + P0['id']},
            'identifier': [{'system': sysid, 'value': v}],
            'prediction': [{'probabilityDecimal': float(v)}]})
        expect_status(r, 201)
        made[r.json['id']] = float(v)
    base = 'RiskAssessment?identifier=%s|&probability=' % q(sysid)
    for val, fn in (('5.4', lambda x: 5.35 <= x < 5.45), ('gt5.4', lambda x: x > 5.4),
                    ('le5.4', lambda x: x <= 5.4), ('1e2', lambda x: 50 <= x < 150)):
        _, e = search_all(base + val)
        eq(sorted(x['resource']['id'] for x in e), sorted(i for i, x in made.items() if fn(x)),
           'probability=%s' % val)
    del rs, ras


test_expect_success('quantity: prefixes, value|system|code, unknown unit', t_quantity)
test_expect_success('quantity: mg/dL and g/L compare in canonical units', t_quantity_units)
test_expect_success('number: implicit precision and prefixes', t_number)


# --------------------------------------------------------------------------
# reference, uri, :missing

def t_reference():
    pid = P0['id']
    exp = [o for o in OBS if ref_id(o.get('subject')) == 'Patient/' + pid]
    expect_ids('Observation?patient=' + pid, exp)
    expect_ids('Observation?subject=Patient/' + pid, exp)
    expect_ids('Observation?subject:Patient=' + pid, exp)
    expect_ids('Observation?patient=' + q('http://elsewhere.example/fhir/Patient/' + pid), exp)
    system, code = common_code(OBS)
    expect_ids('Observation?patient=%s&code=%s' % (pid, q(system + '|' + code)),
               [o for o in exp if has_code(o.get('code'), system, code)])
    encs = [e for e in of_type('Encounter') if ref_id(e.get('subject')) == 'Patient/' + pid]
    expect_ids('Encounter?patient=%s&_sort=-date' % pid, encs)
    conds = of_type('Condition')
    expect_ids('Condition?subject=Patient/%s&clinical-status=active' % pid,
               [x for x in conds if ref_id(x.get('subject')) == 'Patient/' + pid and
                has_code(x.get('clinicalStatus'), None, 'active')])


def t_reference_identifier():
    sysid = 'urn:test:' + unique('refid')
    r = c.post('/fhir/Observation', json={
        'resourceType': 'Observation', 'status': 'final', 'code': {'text': 'x'},
        'subject': {'identifier': {'system': sysid, 'value': 'MRN-1'}}})
    expect_status(r, 201)
    _, e = search_all('Observation?subject:identifier=' + q(sysid + '|MRN-1'))
    eq([x['resource']['id'] for x in e], [r.json['id']], 'subject:identifier')
    c.delete('/fhir/Observation/' + r.json['id'])


def t_uri():
    base = 'http://example.org/' + unique('uri')
    made = {}
    for u in (base + '/a', base + '/a/b', base + '/c'):
        r = c.post('/fhir/ValueSet', json={'resourceType': 'ValueSet', 'status': 'draft', 'url': u})
        expect_status(r, 201)
        made[u] = r.json['id']

    def got(path):
        return sorted(x['resource']['id'] for x in search_all(path)[1])
    eq(got('ValueSet?url=' + q(base + '/a')), [made[base + '/a']], 'url=')
    eq(got('ValueSet?url:below=' + q(base + '/a')), sorted([made[base + '/a'], made[base + '/a/b']]),
       'url:below')
    eq(got('ValueSet?url:above=' + q(base + '/a/b/c')), sorted([made[base + '/a'], made[base + '/a/b']]),
       'url:above')


def t_missing():
    expect_ids('Patient?death-date:missing=true', [p for p in PATIENTS if 'deceasedDateTime' not in p])
    expect_ids('Patient?death-date:missing=false', [p for p in PATIENTS if 'deceasedDateTime' in p])
    expect_ids('Patient?birthdate:missing=true', [p for p in PATIENTS if 'birthDate' not in p])
    expect_ids('Encounter?reason-code:missing=false',
               [e for e in of_type('Encounter') if codings(e.get('reasonCode'))])


test_expect_success('reference: id, Type/id, :Type, absolute URL, with code, status', t_reference)
test_expect_success('reference: :identifier', t_reference_identifier)
test_expect_success('uri: exact, :below, :above', t_uri)
test_expect_success(':missing on token, date, choice elements', t_missing)


# --------------------------------------------------------------------------
# chains, _has, _include, composite

def t_chain():
    fam = P0['name'][0]['family']
    pids = {'Patient/' + p['id'] for p in PATIENTS
            if any(norm(x).startswith(norm(fam)) for x in name_parts(p))}
    expect_ids('Observation?subject:Patient.name=' + q(fam),
               [o for o in OBS if ref_id(o.get('subject')) in pids])
    expect_ids('Observation?patient.family=' + q(fam),
               [o for o in OBS if ref_id(o.get('subject')) in pids])
    # two levels: observations of encounters whose patient has this name
    encs = {'Encounter/' + e['id'] for e in of_type('Encounter') if ref_id(e.get('subject')) in pids}
    expect_ids('Observation?encounter.patient.name=' + q(fam),
               [o for o in OBS if ref_id(o.get('encounter')) in encs])


def t_has():
    system, code = common_code(OBS)
    with_code = {ref_id(o.get('subject')) for o in OBS if has_code(o.get('code'), system, code)}
    expect_ids('Patient?_has:Observation:patient:code=' + q(system + '|' + code),
               [p for p in PATIENTS if 'Patient/' + p['id'] in with_code])
    # nested: patients with an encounter that has an observation of the code
    enc_with = {ref_id(o.get('encounter')) for o in OBS if has_code(o.get('code'), system, code)}
    pats = {ref_id(e.get('subject')) for e in of_type('Encounter') if 'Encounter/' + e['id'] in enc_with}
    expect_ids('Patient?_has:Encounter:patient:_has:Observation:encounter:code=' + q(system + '|' + code),
               [p for p in PATIENTS if 'Patient/' + p['id'] in pats])
    # a chain inside _has: patients with an observation whose encounter is of a class
    encs = of_type('Encounter')
    cls = encs[0]['class']['code']
    e_ok = {'Encounter/' + e['id'] for e in encs if e.get('class', {}).get('code') == cls}
    pats = {ref_id(o.get('subject')) for o in OBS if ref_id(o.get('encounter')) in e_ok}
    expect_ids('Patient?_has:Observation:patient:encounter.class=' + q(cls),
               [p for p in PATIENTS if 'Patient/' + p['id'] in pats])


def t_include():
    pid = P0['id']
    system, code = common_code(OBS)
    sel = [o for o in OBS if ref_id(o.get('subject')) == 'Patient/' + pid and
           has_code(o.get('code'), system, code)]
    _, entries = search_all('Observation?patient=%s&code=%s&_include=Observation:patient' %
                            (pid, q(system + '|' + code)))
    eq(ids(entries), sorted('Observation/' + o['id'] for o in sel), 'matches with _include')
    eq(ids(entries, 'include'), ['Patient/' + pid], 'included patient')
    _, entries = search_all('Patient?_id=%s&_revinclude=Encounter:patient' % pid)
    eq(ids(entries), ['Patient/' + pid], 'match of _revinclude')
    eq(ids(entries, 'include'),
       sorted('Encounter/' + e['id'] for e in of_type('Encounter') if ref_id(e.get('subject')) == 'Patient/' + pid),
       'revincluded encounters')
    # iterate: encounters of the patient, then their service providers
    _, entries = search_all('Patient?_id=%s&_revinclude=Encounter:patient&_include:iterate=Encounter:service-provider' % pid)
    orgs = {ref_id(e.get('serviceProvider')) for e in of_type('Encounter')
            if ref_id(e.get('subject')) == 'Patient/' + pid and e.get('serviceProvider')}
    got = {x for x in ids(entries, 'include') if x.startswith('Organization/')}
    eq(sorted(got), sorted(o for o in orgs if tuple(o.split('/')) in RES), '_include:iterate organizations')


def t_composite():
    with_q = [o for o in OBS if 'valueQuantity' in o]
    system, code = common_code(with_q)
    sel = [o for o in with_q if has_code(o.get('code'), system, code)]
    mid = sorted(o['valueQuantity']['value'] for o in sel)[len(sel) // 2]
    expect_ids('Observation?code-value-quantity=' + q('%s|%s$gt%s' % (system, code, mid)),
               [o for o in sel if o['valueQuantity']['value'] > mid])
    comp = [o for o in OBS if o.get('component')]
    if comp:
        cc = comp[0]['component'][0]
        s2, c2 = cc['code']['coding'][0]['system'], cc['code']['coding'][0]['code']
        v = cc['valueQuantity']['value']
        expect_ids('Observation?component-code-value-quantity=' + q('%s|%s$ge%s' % (s2, c2, v)),
                   [o for o in comp if any(has_code(x.get('code'), s2, c2) and
                                           x.get('valueQuantity', {}).get('value', -1e99) >= v
                                           for x in o['component'])])


test_expect_success('chains: subject:Patient.name, patient.family, two levels', t_chain)
test_expect_success('_has: simple, nested, with a chain inside', t_has)
test_expect_success('_include, _revinclude, _include:iterate', t_include)
test_expect_success('composite: code-value-quantity, component-code-value-quantity', t_composite)


# --------------------------------------------------------------------------
# result parameters

def t_sort():
    pid = P0['id']
    _, entries = search_all('Observation?patient=%s&_sort=-date&_count=13' % pid)
    got = [e['resource'].get('effectiveDateTime') for e in entries]
    eq(got, sorted(got, reverse=True), '_sort=-date order')
    _, entries = search_all('Patient?_sort=birthdate')
    got = [e['resource'].get('birthDate') for e in entries if e['resource'].get('birthDate')]
    eq(got, sorted(got), '_sort=birthdate order')
    _, entries = search_all('Patient?_sort=family,-birthdate')
    keys = [(min(norm(n.get('family', '')) for n in e['resource'].get('name', [{}])) if e['resource'].get('name') else '~')
            for e in entries]
    eq(keys, sorted(keys), '_sort=family first key')


def t_paging():
    pid = P0['id']
    exp = sorted(o['id'] for o in OBS if ref_id(o.get('subject')) == 'Patient/' + pid)
    pages, entries = search_all('Observation?patient=%s&_count=7' % pid)
    got = [e['resource']['id'] for e in entries]
    eq(len(got), len(set(got)), 'no entry twice')
    eq(sorted(got), exp, 'every match once')
    check(len(pages) == (len(exp) + 6) // 7, '%d pages for %d matches' % (len(pages), len(exp)))
    prev = [l for l in pages[1].get('link', []) if l['relation'] == 'previous']
    check(prev, 'page 2 has a previous link')
    u = urllib.parse.urlsplit(prev[0]['url'])
    r = c.get(u.path + '?' + u.query)
    eq([e['resource']['id'] for e in r.json.get('entry', [])], got[:7], 'previous page is page 1')


def t_paging_while_writing():
    sysid = 'urn:test:' + unique('paging')
    mine = []
    for i in range(30):
        r = c.post('/fhir/Observation', json={
            'resourceType': 'Observation', 'status': 'final',
            'code': {'coding': [{'system': sysid, 'code': 'p'}]}})
        mine.append(r.json['id'])
    path = '/fhir/Observation?code=%s&_count=4' % q(sysid + '|p')
    seen = []
    stop = threading.Event()
    other = srv.client()

    def writer():
        while not stop.is_set():
            other.post('/fhir/Observation', json={
                'resourceType': 'Observation', 'status': 'final',
                'code': {'coding': [{'system': sysid, 'code': 'p'}]}})
    th = threading.Thread(target=writer)
    th.start()
    try:
        # delete one not yet seen, mid-walk
        while path:
            r = c.get(path)
            expect_status(r, 200)
            b = r.json
            seen += [e['resource']['id'] for e in b.get('entry', [])]
            if len(seen) == 8:
                c.delete('/fhir/Observation/' + mine[20])
            nxt = [l['url'] for l in b.get('link', []) if l['relation'] == 'next']
            path = None
            if nxt:
                u = urllib.parse.urlsplit(nxt[0])
                path = u.path + '?' + u.query
            if len(seen) > 400:
                break
    finally:
        stop.set()
        th.join()
    eq(len(seen), len(set(seen)), 'no entry twice while writes go on')
    missing = [i for i in mine if i not in seen and i != mine[20]]
    eq(missing, [], 'every resource that existed throughout was returned')


def t_summary_elements():
    pid = P0['id']
    r = c.get('/fhir/Observation?patient=%s&_summary=count' % pid)
    b = r.json
    eq(b.get('total'), len([o for o in OBS if ref_id(o.get('subject')) == 'Patient/' + pid]), '_summary=count total')
    check(not [e for e in b.get('entry', []) if (e.get('search') or {}).get('mode') == 'match'],
          '_summary=count has no entries')
    r = c.get('/fhir/Patient?_id=%s&_elements=birthDate,gender' % pid)
    res = r.json['entry'][0]['resource']
    eq(sorted(k for k in res if k not in ('resourceType', 'id', 'meta')), sorted(k for k in ('birthDate', 'gender') if k in P0), '_elements keeps only those')
    check(any(t.get('code') == 'SUBSETTED' for t in res['meta'].get('tag', [])), 'SUBSETTED tag')
    r = c.get('/fhir/Patient?_id=%s&_summary=true' % pid)
    res = r.json['entry'][0]['resource']
    check('text' not in res and 'name' in res and 'extension' not in res, '_summary=true keeps summary elements only: %s' % sorted(res))
    r = c.get('/fhir/Patient?_id=%s&_summary=data' % pid)
    res = r.json['entry'][0]['resource']
    check('text' not in res and 'extension' in res, '_summary=data drops text only')


def t_entry_points():
    pid = P0['id']
    system, code = common_code(OBS)
    exp = sorted(o['id'] for o in OBS if ref_id(o.get('subject')) == 'Patient/' + pid and has_code(o.get('code'), system, code))
    _, e = search_all('Patient/%s/Observation?code=%s' % (pid, q(system + '|' + code)))
    eq(sorted(x['resource']['id'] for x in e), exp, 'compartment search')
    r = c.request('POST', '/fhir/Observation/_search',
                  body=('patient=%s&code=%s' % (pid, q(system + '|' + code))).encode(),
                  content_type='application/x-www-form-urlencoded')
    expect_status(r, 200)
    eq(sorted(x['resource']['id'] for x in r.json.get('entry', [])
              if x['search']['mode'] == 'match')[:len(exp)], exp[:20], 'POST _search')
    _, e = search_all('?_type=Patient,Condition&_id=%s' % pid)
    eq([x['resource']['id'] for x in e], [pid], 'system search with _type')
    fam = P0['name'][0]['family']
    _, e = search_all('?_type=Patient&name=%s' % q(fam))
    check(pid in [x['resource']['id'] for x in e], 'system search with one _type uses its parameters')


test_expect_success('_sort: -date, birthdate, two keys', t_sort)
test_expect_success('paging: next links return every match once; previous link', t_paging)
test_expect_success('paging: stable while other writes and deletes go on', t_paging_while_writing)
test_expect_success('_summary=count/true/data, _elements', t_summary_elements)
test_expect_success('entry points: compartment, POST _search, system search with _type', t_entry_points)


# --------------------------------------------------------------------------
# bad input

def t_bad_input():
    for path, what in (
            ('Patient?birthdate=2024-13-01', 'a malformed date'),
            ('Patient?birthdate=ge19x0', 'a malformed date after a prefix'),
            ('Patient?name:nonsense=x', 'an unknown modifier'),
            ('Patient?gender:exact=x', 'a modifier of another type'),
            ('Observation?code.name=x', 'a chain on a token parameter'),
            ('Observation?subject:Patient.nosuch=x', 'a chain to an unknown parameter'),
            ('Patient?_count=-1', '_count=-1'),
            ('Patient?_count=abc', '_count=abc'),
            ('Observation?value-quantity=abc', 'a malformed quantity'),
            ('Patient?_sort=nosuch', 'an unknown sort key'),
            ('Patient?_has:Observation:nosuch:code=1', '_has through an unknown parameter'),
            ('Patient?_include=Observation:nosuch', 'an unknown include'),
            ('Patient?death-date:missing=maybe', ':missing=maybe'),
            ('Observation?subject:Patient.organization.partof.partof.partof.name=x', 'a chain too deep'),
    ):
        r = c.get('/fhir/' + path)
        check(r.status == 400, '%s (%s): expected 400, got %d' % (what, path, r.status))
        oo = r.json
        eq(oo.get('resourceType'), 'OperationOutcome', 'body of %s' % path)
        check(oo.get('issue') and oo['issue'][0].get('diagnostics'), 'a diagnostic for %s' % path)


def t_huge_or():
    vals = ','.join('id%d' % i for i in range(50000))
    t0 = time.monotonic()
    r = c.request('POST', '/fhir/Patient/_search', body=('_id=' + vals).encode(),
                  content_type='application/x-www-form-urlencoded')
    dt = time.monotonic() - t0
    check(r.status == 400, '50,000-value OR list: expected 400, got %d' % r.status)
    eq(r.json.get('resourceType'), 'OperationOutcome', 'body')
    check(dt < 10, 'answered in %.1f s' % dt)


def t_lenient_strict():
    r = c.get('/fhir/Patient?nosuchparam=1&gender=female')
    expect_status(r, 200)
    b = r.json
    outcomes = [e for e in b.get('entry', []) if (e.get('search') or {}).get('mode') == 'outcome']
    check(outcomes and any('nosuchparam' in (i.get('diagnostics') or '') for i in outcomes[0]['resource']['issue']),
          'the ignored parameter is reported in an OperationOutcome entry')
    eq(b.get('total'), len([p for p in PATIENTS if p.get('gender') == 'female']) + 0, 'total with the unknown parameter ignored')
    r = c.get('/fhir/Patient?nosuchparam=1', headers={'Prefer': 'handling=strict'})
    expect_status(r, 400)


test_expect_success('bad input: malformed values, unknown modifiers, bad chains, _count=-1', t_bad_input)
test_expect_success('bad input: a 50,000-value OR list is refused quickly', t_huge_or)
test_expect_success('unknown parameters: ignored and reported (lenient), 400 (strict)', t_lenient_strict)



def t_full_text():
    word = 'quokka' + unique('w').replace('-', '')
    r = c.post('/fhir/Patient', json={
        'resourceType': 'Patient', 'name': [{'family': 'Text'}],
        'text': {'status': 'generated',
                 'div': '<div xmlns="http://www.w3.org/1999/xhtml">Likes <b>%s</b> &amp; tea</div>' % word}})
    expect_status(r, 201)
    pid = r.json['id']
    r = c.post('/fhir/Condition', json={
        'resourceType': 'Condition', 'subject': {'reference': 'Patient/' + pid},
        'code': {'text': 'Allergy to %s dander' % word.upper()}})
    expect_status(r, 201)
    cid = r.json['id']

    def got(path):
        return sorted(x['resource']['id'] for x in search_all(path)[1])
    eq(got('Patient?_text=' + q(word)), [pid], '_text finds the narrative word')
    eq(got('Patient?_text=' + q(word[:8])), [pid], '_text matches a word prefix')
    eq(got('Patient?_text=' + q(word + ' tea')), [pid], '_text with two words (AND)')
    eq(got('Patient?_text=' + q(word + ' coffee')), [], 'a word that is not there')
    eq(got('Condition?_content=' + q(word + ' dander')), [cid], '_content finds strings')
    eq(got('Condition?_text=' + q(word)), [], 'no narrative, no _text match')
    c.put('/fhir/Condition/' + cid, json={'resourceType': 'Condition', 'id': cid,
                                           'subject': {'reference': 'Patient/' + pid},
                                           'code': {'text': 'something else'}})
    eq(got('Condition?_content=' + q(word)), [], 'an update replaces the full text')


def t_list():
    ids_ = []
    for fam in ('ListA', 'ListB', 'ListC'):
        r = c.post('/fhir/Patient', json={'resourceType': 'Patient', 'name': [{'family': fam}]})
        ids_.append(r.json['id'])
    r = c.post('/fhir/List', json={'resourceType': 'List', 'status': 'current', 'mode': 'working',
                                   'entry': [{'item': {'reference': 'Patient/' + i}} for i in ids_[:2]]})
    expect_status(r, 201)
    lid = r.json['id']
    eq(sorted(x['resource']['id'] for x in search_all('Patient?_list=' + lid)[1]), sorted(ids_[:2]),
       '_list: the patients in the list')


if STORE == 'postgres':
    test_skip('_text and _content: full text words, prefixes, AND, updates',
              'full text is not indexed on PostgreSQL yet (src/store/postgres_search.c)')
else:
    test_expect_success('_text and _content: full text words, prefixes, AND, updates', t_full_text)
test_expect_success('_list: the resources a List holds', t_list)


def t_reindex():
    system, code = common_code(OBS)
    path = 'Observation?code=%s' % q(system + '|' + code)
    before = ids(search_all(path)[1])
    if STORE == 'postgres':
        rc, out = pg_sql(srv.db, 'DELETE FROM idx_token; DELETE FROM idx_string;')
        eq(rc, 0, 'psql: %s' % out)
    else:
        import sqlite3
        db = sqlite3.connect(srv.db, timeout=30)
        db.execute('DELETE FROM idx_token')
        db.execute('DELETE FROM idx_string')
        db.commit()
        db.close()
    eq(ids(search_all(path)[1]), [], 'no matches once the index rows are gone')
    rc, out, err = srv.ehr('reindex')
    check('reindexed' in out, 'ehr reindex reports what it did: %r %r' % (out, err))
    eq(ids(search_all(path)[1]), before, 'the same matches after ehr reindex')
    expect_ids('Patient?name=' + q(P0['name'][0]['family']),
               [p for p in PATIENTS if any(norm(x).startswith(norm(P0['name'][0]['family']))
                                           for x in name_parts(p))])


test_expect_success('ehr reindex rebuilds the index while the server runs', t_reindex)

test_done()
