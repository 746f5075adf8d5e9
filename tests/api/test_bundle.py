#!/usr/bin/env python3
"""
test_bundle.py - batch and transaction Bundles (POST /fhir), FHIR R4
http.html 3.1.0.11: atomicity, processing order, urn:uuid / urn:oid
rewriting, conditional references, ifNoneExist, ifMatch, concurrent
conditional creates, limits, and errors located in the Bundle.

Expected values come from the specification and from what each test sent.
"""
import base64
import re
import threading

from harness import *

srv = start_server(['--max-bundle-entries', '50'])
c = srv.client()
SYS = 'urn:test:' + unique('b')


def tx(entries, kind='transaction', headers=None):
    return c.post('/fhir', json={'resourceType': 'Bundle', 'type': kind, 'entry': entries},
                  headers=headers)


def post(rtype, res, full_url=None, if_none_exist=None):
    e = {'resource': dict(res, resourceType=rtype),
         'request': {'method': 'POST', 'url': rtype}}
    if full_url:
        e['fullUrl'] = full_url
    if if_none_exist:
        e['request']['ifNoneExist'] = if_none_exist
    return e


def patient(value, **kw):
    p = {'identifier': [{'system': SYS, 'value': value}], 'name': [{'family': 'Tx' + value}]}
    p.update(kw)
    return p


def outcome_at(r, codes, where):
    """An OperationOutcome whose issue is located exactly at where."""
    return expect_outcome(r, codes, re.escape(where))


def count(query):
    r = c.get('/fhir/' + query + ('&' if '?' in query else '?') + '_summary=count')
    expect_status(r, 200)
    return r.json['total']


def response_of(r, n):
    expect_status(r, 200)
    b = expect_fhir_json(r)
    check(b.get('resourceType') == 'Bundle', 'the answer is a Bundle')
    es = b.get('entry', [])
    eq(len(es), n, 'response entries')
    return b, es


def t_success():
    v = unique('ok')
    r = tx([post('Patient', patient(v), 'urn:uuid:11111111-1111-4111-8111-%012d' % 1),
            post('Observation', {'status': 'final', 'code': {'text': 'weight'},
                                 'subject': {'reference': 'urn:uuid:11111111-1111-4111-8111-%012d'
                                             % 1}})])
    b, es = response_of(r, 2)
    eq(b.get('type'), 'transaction-response', 'Bundle.type')
    for e in es:
        st = e['response']['status']
        check(st.startswith('201'), 'a created entry answers 201, got %r' % st)
        check(e['response'].get('etag') == 'W/"1"', 'etag W/"1": %r' % e['response'])
        check(e['response'].get('lastModified'), 'lastModified is set')
    pt, pid, _ = location_parts(es[0]['response']['location'], 'Patient')
    ot, oid, _ = location_parts(es[1]['response']['location'], 'Observation')
    obs = c.get('/fhir/Observation/' + oid).json
    eq(obs['subject']['reference'], 'Patient/' + pid, 'urn:uuid reference rewritten')
    eq(count('Patient?identifier=%s|%s' % (SYS, v)), 1, 'patients with the identifier')


def t_failure_leaves_nothing():
    v = unique('bad')
    before = count('Observation')
    r = tx([post('Patient', patient(v)),
            post('Observation', {'status': 'final', 'code': {'text': 'x'}}),
            post('Observation', {'status': 'final', 'code': {'text': 'y'}}),
            post('Patient', patient(v + 'x', birthDate='1980-02-30'))])
    outcome_at(r, (400,), 'Bundle.entry[3].resource.birthDate')
    eq(count('Patient?identifier=%s|%s' % (SYS, v)), 0, 'patients after a failed transaction')
    eq(count('Observation'), before, 'observations after a failed transaction')


def t_failure_in_the_write():
    # valid resources, but a stale ifMatch in the middle: nothing stored
    v = unique('im')
    r = c.post('/fhir/Patient', json=dict(patient(v), resourceType='Patient'))
    expect_status(r, 201)
    _, pid, _ = location_parts(r.header('Location'), 'Patient')
    v2 = unique('im2')
    body = dict(patient(v), resourceType='Patient', id=pid, gender='female')
    r = tx([post('Patient', patient(v2)),
            {'resource': body, 'request': {'method': 'PUT', 'url': 'Patient/' + pid,
                                           'ifMatch': 'W/"7"'}}])
    outcome_at(r, (412,), 'Bundle.entry[1]')
    eq(count('Patient?identifier=%s|%s' % (SYS, v2)), 0, 'the POST of the failed transaction')
    eq(c.get('/fhir/Patient/' + pid).json['meta']['versionId'], '1', 'version after a stale ifMatch')
    # the right version goes through
    r = tx([{'resource': body, 'request': {'method': 'PUT', 'url': 'Patient/' + pid,
                                           'ifMatch': 'W/"1"'}}])
    _, es = response_of(r, 1)
    check(es[0]['response']['status'].startswith('200'), 'update answers 200')
    eq(es[0]['response']['etag'], 'W/"2"', 'new version')
    eq(c.get('/fhir/Patient/' + pid).json.get('gender'), 'female', 'updated content')


def t_if_none_exist():
    v = unique('ine')
    first = tx([post('Patient', patient(v), if_none_exist='identifier=%s|%s' % (SYS, v))])
    _, es = response_of(first, 1)
    check(es[0]['response']['status'].startswith('201'), 'miss: created')
    _, pid, _ = location_parts(es[0]['response']['location'], 'Patient')
    again = tx([post('Patient', patient(v), 'urn:uuid:22222222-2222-4222-8222-000000000001',
                     if_none_exist='identifier=%s|%s' % (SYS, v)),
                post('Observation', {'status': 'final', 'code': {'text': 'z'},
                                     'subject': {'reference':
                                                 'urn:uuid:22222222-2222-4222-8222-000000000001'}})])
    _, es = response_of(again, 2)
    check(es[0]['response']['status'].startswith('200'), 'hit: 200, got %r' % es[0]['response'])
    _, pid2, _ = location_parts(es[0]['response']['location'], 'Patient')
    eq(pid2, pid, 'the existing patient')
    _, oid, _ = location_parts(es[1]['response']['location'], 'Observation')
    eq(c.get('/fhir/Observation/' + oid).json['subject']['reference'], 'Patient/' + pid,
       'reference to a matched conditional create')
    eq(count('Patient?identifier=%s|%s' % (SYS, v)), 1, 'one patient')


def t_conditional_reference():
    org = unique('org')
    r = c.post('/fhir/Organization', json={'resourceType': 'Organization', 'name': 'Clinic',
                                           'identifier': [{'system': SYS, 'value': org}]})
    expect_status(r, 201)
    _, oid, _ = location_parts(r.header('Location'), 'Organization')
    r = tx([post('Patient', patient(unique('cr'), managingOrganization={
        'reference': 'Organization?identifier=%s|%s' % (SYS, org)}))])
    _, es = response_of(r, 1)
    _, pid, _ = location_parts(es[0]['response']['location'], 'Patient')
    eq(c.get('/fhir/Patient/' + pid).json['managingOrganization']['reference'],
       'Organization/' + oid, 'conditional reference resolved')
    # no match: the transaction fails at that reference
    r = tx([post('Patient', patient(unique('cr'), managingOrganization={
        'reference': 'Organization?identifier=%s|nothing' % SYS}))])
    outcome_at(r, (422,), 'Bundle.entry[0].resource.managingOrganization.reference')


def t_order_and_oid():
    # DELETE before POST before PUT before GET, whatever the Bundle order
    v = unique('ord')
    r = c.post('/fhir/Patient', json=dict(patient(v), resourceType='Patient'))
    _, old, _ = location_parts(r.header('Location'), 'Patient')
    pid = unique('put').replace('_', '-')
    r = tx([{'request': {'method': 'GET', 'url': 'Patient/' + pid}},
            {'resource': dict(patient(v + 'p'), resourceType='Patient', id=pid,
                              link=[{'other': {'reference': 'urn:oid:1.2.3.4.5'},
                                     'type': 'seealso'}]),
             'request': {'method': 'PUT', 'url': 'Patient/' + pid}},
            post('Patient', patient(v + 'o'), 'urn:oid:1.2.3.4.5'),
            {'request': {'method': 'DELETE', 'url': 'Patient/' + old}}])
    _, es = response_of(r, 4)
    check(es[0]['response']['status'].startswith('200'), 'GET after the PUT: %r' % es[0]['response'])
    eq(es[0]['resource']['id'], pid, 'GET sees the PUT of the same transaction')
    _, nid, _ = location_parts(es[2]['response']['location'], 'Patient')
    eq(es[0]['resource']['link'][0]['other']['reference'], 'Patient/' + nid, 'urn:oid rewritten')
    eq(c.get('/fhir/Patient/' + old).status, 410, 'deleted in the transaction')


def t_batch():
    v = unique('bt')
    r = tx([post('Patient', patient(v)),
            post('Patient', patient(v + 'b', birthDate='not-a-date')),
            {'request': {'method': 'GET', 'url': 'Patient?identifier=%s|%s' % (SYS, v)}},
            {'request': {'method': 'GET', 'url': 'Patient/does-not-exist'}}], kind='batch')
    b, es = response_of(r, 4)
    eq(b.get('type'), 'batch-response', 'Bundle.type')
    check(es[0]['response']['status'].startswith('201'), 'good entry: 201')
    check(es[1]['response']['status'].startswith('400'), 'bad entry: 400')
    oo = es[1]['response'].get('outcome') or {}
    eq(oo.get('resourceType'), 'OperationOutcome', 'the failed entry carries an OperationOutcome')
    check(any('Bundle.entry[1].resource.birthDate' in (i.get('expression') or [])
              for i in oo.get('issue', [])), 'issue located: %r' % oo)
    eq(es[2]['resource']['total'], 1, 'search in a batch sees the created patient')
    check(es[3]['response']['status'].startswith('404'), 'missing read: 404')
    eq(count('Patient?identifier=%s|%s' % (SYS, v + 'b')), 0, 'the bad entry stored nothing')


def t_concurrent_conditional_creates():
    v = unique('cc')
    results = []

    def one():
        cl = srv.client()
        r = cl.post('/fhir', json={'resourceType': 'Bundle', 'type': 'transaction', 'entry': [
            post('Patient', patient(v), if_none_exist='identifier=%s|%s' % (SYS, v))]})
        results.append(r.status)
    ts = [threading.Thread(target=one) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    eq(sorted(results), [200] * 8, 'statuses')
    eq(count('Patient?identifier=%s|%s' % (SYS, v)), 1, 'patients after 8 concurrent creates')
    # and through the plain REST conditional create at the same time
    v2 = unique('cc2')
    res2 = []

    def two():
        cl = srv.client()
        res2.append(cl.post('/fhir/Patient', json=dict(patient(v2), resourceType='Patient'),
                            headers={'If-None-Exist': 'identifier=%s|%s' % (SYS, v2)}).status)
    ts = [threading.Thread(target=two) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    eq(count('Patient?identifier=%s|%s' % (SYS, v2)), 1, 'patients after 8 concurrent POSTs')


def t_patch():
    v = unique('pa')
    r = c.post('/fhir/Patient', json=dict(patient(v), resourceType='Patient'))
    _, pid, _ = location_parts(r.header('Location'), 'Patient')
    ops = base64.b64encode(b'[{"op":"add","path":"/gender","value":"male"}]').decode()
    r = tx([{'resource': {'resourceType': 'Binary', 'contentType': 'application/json-patch+json',
                          'data': ops}, 'request': {'method': 'PATCH', 'url': 'Patient/' + pid}}])
    _, es = response_of(r, 1)
    eq(c.get('/fhir/Patient/' + pid).json.get('gender'), 'male', 'patched')


def t_limits_and_bad_bundles():
    r = tx([post('Patient', patient('l%d' % i)) for i in range(51)])
    outcome_at(r, (413,), 'Bundle.entry')
    r = c.post('/fhir', json={'resourceType': 'Bundle', 'type': 'collection', 'entry': []})
    outcome_at(r, (400,), 'Bundle.type')
    r = c.post('/fhir', json={'resourceType': 'Patient'})
    expect_outcome(r, (400,))
    r = tx([{'resource': {'resourceType': 'Patient'}, 'request': {'method': 'POST', 'url': 'Nope'}}])
    outcome_at(r, (400,), 'Bundle.entry[0].request.url')
    r = tx([{'resource': {'resourceType': 'Patient'}}])
    outcome_at(r, (400,), 'Bundle.entry[0].request')
    r = tx([post('Patient', patient('u1'), 'urn:uuid:a'),
            post('Observation', {'status': 'final', 'code': {'text': 'x'},
                                 'subject': {'reference': 'urn:uuid:not-in-bundle'}})])
    outcome_at(r, (422,), 'Bundle.entry[1].resource.subject.reference')
    r = c.post('/fhir', body='{"resourceType": "Bundle", "type": ', content_type='application/fhir+json')
    expect_outcome(r, (400,))
    r = tx([])
    b, es = response_of(r, 0)
    cs = c.get('/fhir/metadata').json
    codes = [i['code'] for i in cs['rest'][0].get('interaction', [])]
    check('transaction' in codes and 'batch' in codes, 'CapabilityStatement: %r' % codes)


test_expect_success('transaction: entries created, urn:uuid references rewritten, 201 with etag',
                    t_success)
test_expect_success('transaction: an invalid entry in the middle leaves nothing, located at '
                    'Bundle.entry[3].resource.birthDate', t_failure_leaves_nothing)
test_expect_success('transaction: a stale ifMatch fails it all (412); the right one updates',
                    t_failure_in_the_write)
test_expect_success('transaction: ifNoneExist miss creates, hit answers 200 with the existing '
                    'resource and references resolve to it', t_if_none_exist)
test_expect_success('transaction: conditional references resolve; none matching is 422',
                    t_conditional_reference)
test_expect_success('transaction: DELETE, POST, PUT, GET order; urn:oid rewritten', t_order_and_oid)
test_expect_success('batch: entries succeed or fail one by one, OperationOutcome each', t_batch)
test_expect_success('8 concurrent identical conditional creates make one resource',
                    t_concurrent_conditional_creates)
test_expect_success('transaction: PATCH entry (Binary JSON Patch)', t_patch)
test_expect_success('limits and malformed Bundles answer OperationOutcomes with locations',
                    t_limits_and_bad_bundles)
test_done()
