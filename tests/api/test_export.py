#!/usr/bin/env python3
"""
test_export.py - FHIR Bulk Data Access 2.0 $export (hl7.org/fhir/uv/bulkdata):
kick-off at system, Patient and Group levels, status polling, manifest,
NDJSON downloads under the same authorization, _type, _since, cancel, a
restart in the middle, and the round trip through ehr import.

Expected contents are computed from what the test loaded (one Synthea r4-2019
patient Bundle: its resources by type, and that patient's compartment as
the entries that refer to it).
"""
import glob
import json
import os
import subprocess
import tempfile
import time
import urllib.parse

from harness import *

S2019 = os.path.join(DATA_DIR, 'synthea', 'r4-2019')


def refs_in(v):
    if isinstance(v, dict):
        for k, x in v.items():
            if k == 'reference' and isinstance(x, str):
                yield x
            else:
                yield from refs_in(x)
    elif isinstance(v, list):
        for x in v:
            yield from refs_in(x)


def pick_bundles():
    out = []
    for f in sorted(glob.glob(os.path.join(S2019, '*.json'))):
        j = json.load(open(f, encoding='utf-8'))
        if isinstance(j, dict) and j.get('resourceType') == 'Bundle' and any(
                e['resource']['resourceType'] == 'Patient' for e in j['entry']):
            out.append((f, j))
        if len(out) == 2:
            break
    return out


if not os.path.isdir(S2019):
    test_skip('bulk $export', '%s is absent' % S2019)
    test_done()

BUNDLES = pick_bundles()
EXPECT = {}      # (type, id) of everything loaded -> the resource
COMPART = {}     # patient id -> {(type, id)}
for f, b in BUNDLES:
    pat = next(e for e in b['entry'] if e['resource']['resourceType'] == 'Patient')
    pid = pat['resource']['id']
    names = {pat['fullUrl'], 'Patient/' + pid}
    COMPART[pid] = {('Patient', pid)}
    for e in b['entry']:
        r = e['resource']
        EXPECT[(r['resourceType'], r['id'])] = r
        if any(x in names for x in refs_in(r)):
            COMPART[pid].add((r['resourceType'], r['id']))
P1, P2 = list(COMPART)

srv = start_server()
c = srv.client()


def load():
    p = subprocess.run([EHR_BIN, 'import', '--url', srv.base() + '/fhir', '--token', srv.token,
                        '--quiet'] + [f for f, _ in BUNDLES], capture_output=True, text=True,
                       timeout=600)
    eq(p.returncode, 0, 'import (stderr: %s)' % p.stderr[-1000:])
    g = {'resourceType': 'Group', 'id': 'cohort', 'type': 'person', 'actual': True,
         'member': [{'entity': {'reference': 'Patient/' + P1}}]}
    expect_status(c.put('/fhir/Group/cohort', json=g), 201, 200)
    EXPECT[('Group', 'cohort')] = g
    COMPART[P1].add(('Group', 'cohort'))  # Group.member puts it in P1's compartment


def kickoff(path, status=202, headers=None):
    h = {'Prefer': 'respond-async', 'Accept': 'application/fhir+json'}
    h.update(headers or {})
    r = c.get(path, headers=h)
    expect_status(r, status)
    if status != 202:
        return r
    loc = r.header('Content-Location')
    check(loc and '/$export-status/' in loc, 'Content-Location: %r' % loc)
    return urllib.parse.urlsplit(loc).path


def poll(status_path, timeout=120):
    deadline = time.time() + timeout
    saw_progress = False
    while time.time() < deadline:
        r = c.get(status_path)
        if r.status == 202:
            check(r.header('X-Progress'), '202 without X-Progress')
            check(r.header('Retry-After'), '202 without Retry-After')
            saw_progress = True
            time.sleep(0.2)
            continue
        expect_status(r, 200)
        m = json.loads(r.content())
        for k in ('transactionTime', 'request', 'requiresAccessToken', 'output', 'error'):
            check(k in m, 'manifest without %s: %r' % (k, m))
        eq(m['requiresAccessToken'], True, 'requiresAccessToken')
        return m
    raise TestFailure('the export did not finish within %ds' % timeout)


def download(m, client=None):
    """{(type, id): resource} of every file of the manifest."""
    cl = client or c
    got = {}
    for o in m['output']:
        r = cl.get(urllib.parse.urlsplit(o['url']).path, headers={'Accept': None})
        expect_status(r, 200)
        check(r.header('Content-Type', '').startswith('application/fhir+ndjson'),
              'Content-Type %r' % r.header('Content-Type'))
        lines = [l for l in r.content().decode('utf-8').split('\n') if l]
        eq(len(lines), o['count'], 'lines of %s vs its count in the manifest' % o['type'])
        for l in lines:
            res = loads_exact(l.encode('utf-8'))
            eq(res['resourceType'], o['type'], 'resourceType in %s.ndjson' % o['type'])
            got[(res['resourceType'], res['id'])] = res
    return got


def t_system():
    load()
    r = c.get('/fhir/$export')
    expect_outcome(r, (400,))
    kickoff('/fhir/$export?_outputFormat=text/csv', status=400)
    kickoff('/fhir/$export?_type=Nope', status=400)
    st = kickoff('/fhir/$export')
    m = poll(st)
    got = download(m)
    want = set(EXPECT)
    check(want <= set(got), 'missing from the export: %s' % sorted(want - set(got))[:5])
    for (t, i), res in list(got.items())[:50]:
        eq(res, c.get('/fhir/%s/%s' % (t, i)).json, '%s/%s as exported vs read' % (t, i))
    # the files need the same authorization: no token, another user
    anon = srv.client(token=None)
    u = urllib.parse.urlsplit(m['output'][0]['url']).path
    eq(anon.get(u, headers={'Accept': None}).status, 401, 'file without a token')
    eq(anon.get(st).status, 401, 'status without a token')
    pw = 'Other-%d-%s' % (os.getpid(), os.urandom(4).hex())
    srv.ehr('user', 'add', '--username', 'other-admin', '--password', pw, '--role', 'admin')
    _, out, _ = srv.ehr('token', '--user', 'other-admin', '--scope', 'user/*.cruds')
    other = srv.client(token=out.strip().splitlines()[-1])
    eq(other.get(st).status, 404, "another user's job is not known")
    eq(other.get(urllib.parse.urlsplit(m['output'][0]['url']).path,
                 headers={'Accept': None}).status, 404, "another user's file")


def t_type_since():
    m = poll(kickoff('/fhir/$export?_type=Patient,Observation'))
    eq(sorted(o['type'] for o in m['output']), ['Observation', 'Patient'], 'types of _type')
    got = download(m)
    eq({k for k in got if k in EXPECT}, {k for k in EXPECT if k[0] in ('Patient', 'Observation')},
       '_type contents')
    m = poll(kickoff('/fhir/$export?_since=2999-01-01T00:00:00Z'))
    eq(m['output'], [], '_since in the future')


def loinc(res, code):
    return any(c.get('system') == 'http://loinc.org' and c.get('code') == code
               for c in res.get('code', {}).get('coding', []))


def t_type_filter():
    q = ('/fhir/$export?_type=Observation,Patient&_typeFilter=' +
         urllib.parse.quote('Observation?code=http://loinc.org|8302-2'))
    got = set(download(poll(kickoff(q))))
    want = {k for k, r in EXPECT.items() if k[0] == 'Patient' or
            (k[0] == 'Observation' and loinc(r, '8302-2'))}
    check(any(k[0] == 'Observation' for k in want), 'the data has body heights')
    eq({k for k in got if k in EXPECT}, want, '_typeFilter: body heights and every Patient')
    kickoff('/fhir/$export?_typeFilter=' + urllib.parse.quote('Observation?nope=1'), status=400)
    kickoff('/fhir/$export?_typeFilter=' + urllib.parse.quote('code=1'), status=400)


def t_patient_group():
    m = poll(kickoff('/fhir/Patient/$export'))
    got = set(download(m))
    want = COMPART[P1] | COMPART[P2]
    check(want <= got, 'patient-level export misses %s' % sorted(want - got)[:5])
    check(not any(t in ('Organization', 'Practitioner') for t, _ in got),
          'patient-level export has resources outside every compartment')
    m = poll(kickoff('/fhir/Group/cohort/$export'))
    eq(set(download(m)), COMPART[P1], 'Group/cohort/$export: its member\'s compartment')
    kickoff('/fhir/Group/none/$export', status=404)


def t_cancel():
    st = kickoff('/fhir/$export')
    r = c.delete(st)
    expect_status(r, 202)
    eq(c.get(st).status, 404, 'status after DELETE')


def t_restart_resumes():
    st = kickoff('/fhir/$export')
    srv.kill()
    srv.start()
    m = poll(st)
    check(set(EXPECT) <= set(download(m)), 'the export after a restart is complete')


def t_round_trip():
    m = poll(kickoff('/fhir/$export'))
    d = tempfile.mkdtemp(prefix='ehr-bulk-rt-')
    got = download(m)
    by_type = {}
    for (t, _), res in got.items():
        by_type.setdefault(t, []).append(res)
    for t, rs in by_type.items():
        with open(os.path.join(d, t + '.ndjson'), 'w', encoding='utf-8') as f:
            for res in rs:
                f.write(dumps(res) + '\n')
    s = Server(name='bulk-reimport')
    p = subprocess.run([EHR_BIN, 'import', *store_args(s.db, s.store), '--quiet', d], capture_output=True,
                       text=True, timeout=600)
    eq(p.returncode, 0, 're-import (stderr: %s)' % p.stderr[-1000:])
    s.start()
    sc = s.client()
    for (t, i), res in got.items():
        r = sc.get('/fhir/%s/%s' % (t, i))
        expect_status(r, 200)
        check(json_equal(strip_meta(r.json), strip_meta(res)),
              '%s/%s differs after the round trip' % (t, i))
    s.stop()


test_expect_success('system $export: 400 without Prefer or with a bad _outputFormat/_type; 202, '
                    'polling, manifest, files equal to reads; files need the same user',
                    t_system)
test_expect_success('_type and _since', t_type_since)
test_expect_success('_typeFilter keeps the matching resources of its type; bad ones answer 400',
                    t_type_filter)
test_expect_success('Patient/$export is the compartments; Group/ID/$export its members\'',
                    t_patient_group)
test_expect_success('DELETE cancels a job', t_cancel)
test_expect_success('a job survives SIGKILL and restart of the server', t_restart_resumes)
test_expect_success('$export, re-import into an empty database: the same resources',
                    t_round_trip)
test_done()
