#!/usr/bin/env python3
"""
test_roundtrip.py - real data through the API and back.

Every resource in ../shared/data/us-core/examples/ and every entry resource of
the Synthea bundles in ../shared/data/synthea/r4-2019/ is written with PUT on
its own id (so references between them stay valid) and read back; the result
must equal what was sent apart from meta (numbers compared by value, decimals
exactly). Synthea bundles refer to their entries as urn:uuid:<id>; those
references are rewritten to <type>/<id> before sending, as a transaction
would, and the expected content is the rewritten resource.
"""
import decimal
import glob
import json
import os
import queue
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403
from harness import dumps  # noqa: E402

US_CORE = os.path.join(DATA_DIR, 'us-core', 'examples')
SYNTHEA = os.path.join(DATA_DIR, 'synthea', 'r4-2019')
WORKERS = 8

if not os.path.isdir(DATA_DIR):
    test_skip('round trip of US Core examples', '%s is absent' % DATA_DIR)
    test_skip('round trip of Synthea bundle entries', '%s is absent' % DATA_DIR)
    test_done()

srv = start_server(name='roundtrip')


class Num(decimal.Decimal):
    """A JSON number that remembers its text."""
    def __new__(cls, text):
        d = decimal.Decimal.__new__(cls, text)
        d.text = text
        return d


def load_text_numbers(data):
    return json.loads(data, parse_float=Num, parse_int=Num)


def numbers(v, path='$'):
    """(path, text) of every number in a parsed document."""
    if isinstance(v, dict):
        for k, x in v.items():
            yield from numbers(x, path + '.' + k)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from numbers(x, '%s[%d]' % (path, i))
    elif isinstance(v, Num):
        yield path, v.text


def rewrite_refs(v, urn_map):
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if k == 'reference' and isinstance(x, str) and x in urn_map:
                out[k] = urn_map[x]
            else:
                out[k] = rewrite_refs(x, urn_map)
        return out
    if isinstance(v, list):
        return [rewrite_refs(x, urn_map) for x in v]
    return v


class Results:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = 0
        self.failures = []       # (label, message)
        self.precision = []      # (label, path, sent text, got text)
        self.meta_lost = []      # (label, what)
        self.by_type = {}
        self.refused = []        # (label, reason): invalid as published, refused as they must be

    def fail(self, label, msg):
        with self.lock:
            self.failures.append((label, msg))


def known_invalid(v, path):
    """(expression, reason) when the published resource breaks a rule of base
    FHIR R4 that this test can check on its own, else None. So far: a Narrative
    without div (Narrative.div is 1..1), as in US Core's diagnosticreport-cbc."""
    if isinstance(v, dict):
        t = v.get('text')
        if isinstance(t, dict) and 'div' not in t:
            return path + '.text.div', 'Narrative.div is 1..1 but the resource has text without div'
        for k, x in v.items():
            if k == 'contained' and isinstance(x, list):
                for i, cr in enumerate(x):
                    got = known_invalid(cr, '%s.contained[%d]' % (path, i))
                    if got:
                        return got
    return None


def roundtrip_one(cl, label, res, results):
    """PUT res on its id, read the version written back, compare. A resource
    that is itself invalid must be refused with 400 naming the element."""
    rtype, rid = res['resourceType'], res.get('id')
    body = dumps(res).encode('utf-8')
    invalid = known_invalid(res, rtype)
    if invalid:
        r = cl.put('/fhir/%s/%s' % (rtype, rid), body=body, content_type='application/fhir+json')
        exprs = outcome_expressions(r.json) if r.json else []
        if r.status != 400 or invalid[0] not in exprs:
            return results.fail(label, 'invalid as published (%s): expected 400 naming %s, got %d %s'
                                % (invalid[1], invalid[0], r.status, r.body[:300]))
        with results.lock:
            results.refused.append((label, invalid[1]))
        return None
    if rid:
        r = cl.put('/fhir/%s/%s' % (rtype, rid), body=body, content_type='application/fhir+json')
        if r.status not in (200, 201):
            return results.fail(label, 'PUT answered %d: %s' % (r.status, r.body[:600].decode('utf-8', 'replace')))
    else:
        r = cl.post('/fhir/%s' % rtype, body=body, content_type='application/fhir+json')
        if r.status != 201:
            return results.fail(label, 'POST answered %d: %s' % (r.status, r.body[:600].decode('utf-8', 'replace')))
        rid = location_parts(r.header('Location'), rtype)[1]
    try:
        vid = parse_etag_version(r.header('ETag'))
        path = '/fhir/%s/%s/_history/%s' % (rtype, rid, vid)   # the version this PUT wrote
    except TestFailure:
        path = '/fhir/%s/%s' % (rtype, rid)
    g = cl.get(path)
    if g.status != 200:
        return results.fail(label, 'GET %s answered %d' % (path, g.status))
    try:
        got = load_text_numbers(g.content())
    except ValueError as e:
        return results.fail(label, 'GET %s: not JSON: %s' % (path, e))
    want = {k: v for k, v in res.items() if k != 'meta'}
    if 'id' not in want:
        want['id'] = rid
    d = json_diff(want, {k: v for k, v in got.items() if k != 'meta'})
    if d:
        return results.fail(label, 'read back differs: %s' % d)
    sent_nums = dict(numbers(res))
    for p, text in numbers(got):
        if p in sent_nums and sent_nums[p] != text:
            with results.lock:
                results.precision.append((label, p, sent_nums[p], text))
    sm, gm = res.get('meta') or {}, got.get('meta') or {}
    for k in ('profile', 'tag', 'security', 'source'):
        if k in sm and json_diff(sm[k], gm.get(k)) is not None:
            with results.lock:
                results.meta_lost.append((label, 'meta.%s' % k))
    with results.lock:
        results.ok += 1
        results.by_type[rtype] = results.by_type.get(rtype, 0) + 1


def run_parallel(jobs, results, workers=WORKERS):
    """jobs: list of lists; each inner list runs in order on one worker."""
    q = queue.Queue()
    for j in jobs:
        q.put(j)
    errors = []

    def worker():
        cl = srv.client()
        try:
            while True:
                try:
                    seq = q.get_nowait()
                except queue.Empty:
                    return
                for label, res in seq:
                    try:
                        roundtrip_one(cl, label, res, results)
                    except Exception as e:  # noqa: BLE001
                        results.fail(label, '%s: %s' % (e.__class__.__name__, e))
                        cl.close()
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            cl.close()
    ts = [threading.Thread(target=worker) for _ in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    check(not errors, 'workers failed: %r' % errors[:3])


def report(results, total, what):
    note('%s: %d of %d read back equal, %d refused as invalid; by type: %s' % (
        what, results.ok, total, len(results.refused),
        ', '.join('%s %d' % kv for kv in sorted(results.by_type.items(), key=lambda kv: -kv[1]))))
    for label, why in results.refused:
        note('%s refused with 400 as it must be: %s' % (label, why))
    if results.failures:
        lines = ['%d of %d %s did not round-trip:' % (len(results.failures), total, what)]
        for label, msg in sorted(results.failures)[:25]:
            lines.append('  %s: %s' % (label, msg))
        if len(results.failures) > 25:
            lines.append('  ... and %d more' % (len(results.failures) - 25))
        raise TestFailure('\n'.join(lines))


US = {'res': None}
SY = {'res': None}


def load_us_core():
    items = []
    for f in sorted(glob.glob(os.path.join(US_CORE, '*.json'))):
        with open(f, 'rb') as fh:
            data = fh.read()
        items.append((os.path.basename(f), load_text_numbers(data)))
    return items


def t_us_core():
    if not os.path.isdir(US_CORE):
        raise Skip('%s is absent' % US_CORE)
    items = load_us_core()
    check(len(items) >= 200, 'expected the 230 US Core examples, found %d' % len(items))
    results = Results()
    # Each example on its own; the store does not check references, so order is free.
    run_parallel([[x] for x in items], results)
    US['res'] = results
    report(results, len(items), 'US Core examples')


def synthea_jobs():
    files = sorted(glob.glob(os.path.join(SYNTHEA, '*.json')))
    bundles = []
    for f in files:
        with open(f, 'rb') as fh:
            data = fh.read()
        b = load_text_numbers(data)
        if not isinstance(b, dict) or b.get('resourceType') != 'Bundle':
            continue          # e.g. the INDEX file
        bundles.append((os.path.basename(f), b))
    urn_map = {}
    for _name, b in bundles:
        for e in b.get('entry', []):
            r = e['resource']
            if e.get('fullUrl', '').startswith('urn:uuid:') and r.get('id'):
                urn_map[e['fullUrl']] = '%s/%s' % (r['resourceType'], r['id'])
    # hospital and practitioner bundles first: the patient bundles refer to them
    shared = [x for x in bundles if x[0].startswith(('hospitalInformation', 'practitionerInformation'))]
    patients = [x for x in bundles if x not in shared]
    first, second = [], []
    n = 0
    for group, out in ((shared, first), (patients, second)):
        for name, b in group:
            seq = []
            for i, e in enumerate(b.get('entry', [])):
                r = rewrite_refs(e['resource'], urn_map)
                seq.append(('%s#%d %s/%s' % (name, i, r['resourceType'], r.get('id')), r))
                n += 1
            if group is shared:
                out.extend([[x] for x in seq])   # unique ids: any order
            else:
                out.append(seq)                  # one patient's bundle in order
    return first, second, n, len(bundles)


def t_synthea():
    if not os.path.isdir(SYNTHEA):
        raise Skip('%s is absent' % SYNTHEA)
    first, second, n, nb = synthea_jobs()
    check(nb >= 40, 'expected about 49 Synthea bundles, found %d' % nb)
    results = Results()
    t0 = time.monotonic()
    run_parallel(first, results)
    run_parallel(second, results)
    note('%d resources from %d bundles in %.1fs' % (n, nb, time.monotonic() - t0))
    SY['res'] = results
    report(results, n, 'Synthea entries')


def t_decimal_bytes():
    rid = unique('dec')
    body = ('{"resourceType":"Observation","id":"%s","status":"final",'
            '"code":{"coding":[{"system":"http://loinc.org","code":"2339-0"}]},'
            '"valueQuantity":{"value":1.50,"unit":"mg/dL","system":"http://unitsofmeasure.org",'
            '"code":"mg/dL"},"component":[{"code":{"text":"x"},"valueQuantity":{"value":0.0010}},'
            '{"code":{"text":"y"},"valueQuantity":{"value":100.000}}]}' % rid)
    c = srv.client()
    r = c.put('/fhir/Observation/%s' % rid, body=body, content_type='application/fhir+json')
    expect_status(r, 200, 201)
    for path in ('/fhir/Observation/%s' % rid, '/fhir/Observation/%s?_pretty=true' % rid):
        g = c.get(path)
        expect_status(g, 200)
        raw = g.content()
        for text in (b'1.50', b'0.0010', b'100.000'):
            check(b'"value":' + text in raw.replace(b' ', b''),
                  '%s: the decimal %s did not come back as the bytes %s' % (path, text.decode(), text.decode()))
    c.close()


def t_precision_all():
    done = [x for x in (US['res'], SY['res']) if x is not None]
    if not done:
        raise Skip('no round trip ran')
    bad = [p for x in done for p in x.precision]
    if bad:
        lines = ['%d numbers came back with different text:' % len(bad)]
        for label, p, a, b in bad[:20]:
            lines.append('  %s %s: sent %s, got %s' % (label, p, a, b))
        raise TestFailure('\n'.join(lines))


def t_meta_kept():
    done = [x for x in (US['res'], SY['res']) if x is not None]
    if not done:
        raise Skip('no round trip ran')
    lost = [p for x in done for p in x.meta_lost]
    if lost:
        raise TestFailure('%d resources lost meta elements (servers SHOULD keep them), e.g. %s'
                          % (len(lost), lost[:10]))


test_expect_success('round trip of every US Core example (PUT on its id, read back equal apart from meta)', t_us_core)
test_expect_success('round trip of every Synthea bundle entry (urn:uuid references rewritten, PUT on its id)', t_synthea)
test_expect_success('decimals keep their text: valueQuantity.value 1.50 comes back as the bytes 1.50', t_decimal_bytes)
test_expect_success('every number in the round-tripped data comes back with the same text', t_precision_all)
test_expect_success('meta.profile, meta.tag, meta.security and meta.source are kept', t_meta_kept)

test_done()
