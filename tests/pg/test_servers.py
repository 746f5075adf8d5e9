#!/usr/bin/env python3
"""
test_servers.py - two `ehr serve` processes on one PostgreSQL database
(EHR_TEST_STORE=postgres; tests/run-api.sh runs it after the API suite).

What must hold across processes as it does inside one (FHIR R4 http.html):
  - concurrent conditional creates (If-None-Exist) through both servers
    make exactly one resource per criteria;
  - concurrent updates with If-Match on the same version: exactly one wins,
    the rest get 412; no lost update;
  - concurrent plain updates through both: every acknowledged update is a
    version, versions are 1..N without gaps or duplicates;
  - a server killed mid-write loses nothing it acknowledged;
  - the audit hash chain written by both verifies.
"""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'api'))
from harness import *  # noqa: E402,F401,F403
from harness import Server  # noqa: E402

if STORE != 'postgres':
    print('1..0 # SKIP needs EHR_TEST_STORE=postgres')
    sys.exit(0)

import tempfile
import urllib.parse

# one export folder for both, as docs/scaling.md asks (shared storage)
EXPORTS = tempfile.mkdtemp(prefix='ehr-pg-exports-')
a = Server(name='pg-a', extra_args=['--export-dir', EXPORTS]).start()
b = Server(name='pg-b', db=a.db, extra_args=['--export-dir', EXPORTS])
b.token = a.token          # the same users: one database
b.start()
SYS = 'http://example.org/ehr-test/pg'


def run_threads(n, fn):
    """Run fn(i) in n threads at once; returns the results in order."""
    out = [None] * n
    go = threading.Barrier(n)

    def one(i):
        go.wait()
        out[i] = fn(i)
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def srv_for(i):
    return (a if i % 2 == 0 else b).client()


def t_conditional_create():
    for round_ in range(6):
        ident = unique('cc')

        def create(i):
            r = srv_for(i).post('/fhir/Patient', json={
                'resourceType': 'Patient', 'identifier': [{'system': SYS, 'value': ident}]},
                headers={'If-None-Exist': 'identifier=%s|%s' % (SYS, ident)})
            return r.status, r.json.get('id') if r.json else None
        res = run_threads(8, create)
        statuses = sorted(s for s, _ in res)
        eq(statuses.count(201), 1, 'round %d: one create among %r' % (round_, statuses))
        check(all(s in (200, 201) for s in statuses), 'others find it: %r' % statuses)
        eq(len({i for _, i in res}), 1, 'every answer names the one resource')
        r = a.client().get('/fhir/Patient?identifier=%s' % quote('%s|%s' % (SYS, ident)))
        expect_status(r, 200)
        eq(r.json['total'], 1, 'one resource in the database')


test_expect_success('conditional creates through two servers at once make one resource',
                    t_conditional_create)


def t_if_match_race():
    c = a.client()
    r = c.post('/fhir/Patient', json={'resourceType': 'Patient', 'gender': 'female'})
    expect_status(r, 201)
    pid = r.json['id']
    for round_ in range(5):
        cur = c.get('/fhir/Patient/%s' % pid)
        v = cur.json['meta']['versionId']

        def put(i):
            body = {'resourceType': 'Patient', 'id': pid, 'gender': 'female',
                    'birthDate': '19%02d-01-01' % i}
            return srv_for(i).put('/fhir/Patient/%s' % pid, json=body,
                                  headers={'If-Match': 'W/"%s"' % v}).status
        st = run_threads(8, put)
        eq(st.count(200), 1, 'round %d: one winner: %r' % (round_, st))
        eq(st.count(412), 7, 'round %d: the others 412: %r' % (round_, st))
        after = b.client().get('/fhir/Patient/%s' % pid)
        eq(after.json['meta']['versionId'], str(int(v) + 1), 'one new version')


test_expect_success('If-Match on one version through two servers: one winner, 412 for the rest',
                    t_if_match_race)


def t_no_lost_update():
    c = a.client()
    r = c.post('/fhir/Observation', json={
        'resourceType': 'Observation', 'status': 'final', 'code': {'text': 'x'}})
    expect_status(r, 201)
    oid = r.json['id']
    acked = []
    lock = threading.Lock()

    def writer(i):
        cl = srv_for(i)
        for k in range(10):
            body = {'resourceType': 'Observation', 'id': oid, 'status': 'final',
                    'code': {'text': 'w%d-%d' % (i, k)}}
            r = cl.put('/fhir/Observation/%s' % oid, json=body)
            if r.status == 200:
                with lock:
                    acked.append((int(r.json['meta']['versionId']), 'w%d-%d' % (i, k)))
    run_threads(6, writer)
    eq(len(acked), 60, 'every update acknowledged')
    versions = sorted(v for v, _ in acked)
    eq(versions, list(range(2, 62)), 'versions 2..61, no gap, no duplicate')
    h = b.client().get('/fhir/Observation/%s/_history?_count=100' % oid)
    expect_status(h, 200)
    eq(h.json['total'], 61, 'history holds every version')
    for v, text in acked:
        r = a.client().get('/fhir/Observation/%s/_history/%d' % (oid, v))
        expect_status(r, 200)
        eq(r.json['code']['text'], text, 'version %d holds what was acknowledged' % v)


test_expect_success('concurrent updates through two servers: no lost or duplicate version',
                    t_no_lost_update)


def t_export_one_server():
    # the data: patients with observations, through both servers
    for i in range(40):
        cl = srv_for(i)
        r = cl.post('/fhir/Patient', json={'resourceType': 'Patient', 'gender': 'male'})
        expect_status(r, 201)
        for k in range(3):
            expect_status(cl.post('/fhir/Observation', json={
                'resourceType': 'Observation', 'status': 'final', 'code': {'text': 'x%d' % k},
                'subject': {'reference': 'Patient/' + r.json['id']}}), 201)
    want = {}
    for t in ('Patient', 'Observation'):
        want[t] = a.client().get('/fhir/%s?_summary=count' % t).json['total']
    h = {'Prefer': 'respond-async', 'Accept': 'application/fhir+json'}
    r = a.client().get('/fhir/$export?_type=Patient,Observation', headers=h)
    expect_status(r, 202)
    st = urllib.parse.urlsplit(r.header('Content-Location')).path
    deadline = time.time() + 120
    while True:
        r = b.client().get(st)     # asked of the other server
        if r.status == 200:
            break
        eq(r.status, 202, 'status of the job')
        check(time.time() < deadline, 'the export did not finish within 120 s')
        time.sleep(0.2)
    m = json.loads(r.content())
    got = {}
    for o in m['output']:
        f = b.client().get(urllib.parse.urlsplit(o['url']).path, headers={'Accept': None})
        expect_status(f, 200)
        ids = [loads_exact(l.encode())['id'] for l in f.content().decode().split('\n') if l]
        eq(len(ids), len(set(ids)), '%s: no resource written twice' % o['type'])
        eq(len(ids), o['count'], '%s: lines vs the manifest' % o['type'])
        got[o['type']] = len(ids)
    eq(got, want, 'every resource once, the job run by one server')


test_expect_success('bulk $export with two servers on one database: one runs the job, once',
                    t_export_one_server)


def t_kill_mid_write():
    acked = {}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(i):
        cl = a.client()
        k = 0
        while not stop.is_set():
            k += 1
            pid = 'kill-%d-%d-%s' % (i, k, os.urandom(3).hex())
            try:
                r = cl.put('/fhir/Patient/%s' % pid, json={'resourceType': 'Patient', 'id': pid})
            except Exception:
                continue
            if r.status == 201:
                with lock:
                    acked[pid] = r.json['meta']['versionId']
    ts = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in ts:
        t.start()
    time.sleep(1.5)
    a.kill()
    stop.set()
    for t in ts:
        t.join()
    check(len(acked) > 20, 'writes were acknowledged before the kill (%d)' % len(acked))
    cl = b.client()
    missing = [p for p in acked if cl.get('/fhir/Patient/%s' % p).status != 200]
    eq(missing, [], 'acknowledged writes readable through the other server')
    note('%d writes acknowledged before the SIGKILL, all present' % len(acked))
    a.start()


test_expect_success('a server killed mid-write: every acknowledged write is there', t_kill_mid_write)


def t_audit_chain():
    rc, out, _ = b.ehr('audit', 'verify', check_rc=False)
    eq(rc, 0, 'the chain written by two servers verifies: %s' % out)


test_expect_success('the audit chain written by both servers verifies', t_audit_chain)

import atexit  # noqa: E402
import shutil  # noqa: E402

atexit.register(shutil.rmtree, EXPORTS, True)
test_done()
