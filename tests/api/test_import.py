#!/usr/bin/env python3
"""
test_import.py - ehr import (through a server and straight into the
database), Patient $everything, and ehr export, on the Synthea bundles of
../shared/data/synthea.

Expected values are computed here from the files, independently of the
server: resources per type (an entry with ifNoneExist is one resource per
distinct criteria, any other one resource per distinct id, since the
importer keeps ids), and each patient's compartment (the Patient and every
entry of its Bundle that refers to it).

The 2019 and 2021 sets describe the same Synthea hospitals under different
resource ids, so each set is loaded into a database of its own (loaded
together, the 2021 conditional references would match two Organizations).
"""
import collections
import glob
import json
import os
import signal
import subprocess
import tempfile
import time

from harness import *

SYN = os.path.join(DATA_DIR, 'synthea')
S2021 = os.path.join(SYN, 'r4-2021')
S2019 = os.path.join(SYN, 'r4-2019')
HAVE = os.path.isdir(S2021) and os.path.isdir(S2019)


def bundle_files(d):
    out = []
    for f in sorted(glob.glob(os.path.join(d, '*.json'))):
        j = json.load(open(f, encoding='utf-8'))
        if isinstance(j, dict) and j.get('resourceType') == 'Bundle':
            out.append(f)
    return out


def expected_counts(files):
    keys = collections.defaultdict(set)
    for f in files:
        b = json.load(open(f, encoding='utf-8'))
        for i, e in enumerate(b.get('entry', [])):
            res = e['resource']
            ine = e.get('request', {}).get('ifNoneExist')
            keys[res['resourceType']].add(('ine', ine) if ine else res.get('id') or (f, i))
    return {t: len(v) for t, v in keys.items()}


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


def expected_compartments(files):
    """{patient id: {(type, id)}}: the Patient and what refers to it in its Bundle."""
    out = {}
    for f in files:
        b = json.load(open(f, encoding='utf-8'))
        pats = [e for e in b.get('entry', []) if e['resource']['resourceType'] == 'Patient']
        if len(pats) != 1:
            continue
        p = pats[0]
        pid = p['resource']['id']
        names = {p.get('fullUrl'), 'Patient/' + pid}
        comp = {('Patient', pid)}
        for e in b['entry']:
            res = e['resource']
            if any(r in names for r in refs_in(res)):
                comp.add((res['resourceType'], res['id']))
        out[pid] = comp
    return out


def server_counts(c, types):
    out = {}
    for t in types:
        r = c.get('/fhir/%s?_summary=count' % t)
        expect_status(r, 200)
        out[t] = r.json['total']
    return out


def run_ehr(*args, env=None, timeout=900):
    p = subprocess.run([EHR_BIN] + list(args), capture_output=True, text=True, timeout=timeout,
                       env=env)
    return p.returncode, p.stdout, p.stderr


def import_url(srv, *paths):
    return run_ehr('import', '--url', srv.base() + '/fhir', '--token', srv.token, *paths)


if not HAVE:
    test_skip('Synthea import, $everything and export', '%s is absent' % SYN)
    test_done()

F2021 = bundle_files(S2021)
F2019 = bundle_files(S2019)
EXP2021 = expected_counts(F2021)
EXP2019 = expected_counts(F2019)

srv = start_server()
c = srv.client()


def t_import_url():
    rc, out, err = import_url(srv, S2021)
    eq(rc, 0, 'exit status (stderr: %s)' % err[-2000:])
    check('errors' in out and '0 errors' in out, 'summary: %r' % out)
    eq(server_counts(c, EXP2021), EXP2021, 'resources per type after importing r4-2021')


def t_rerun():
    rc, out, err = import_url(srv, S2021)
    eq(rc, 0, 'exit status of the re-run (stderr: %s)' % err[-2000:])
    eq(server_counts(c, EXP2021), EXP2021, 'resources per type after a re-run')
    for pid in list(expected_compartments(F2021))[:2]:
        eq(c.get('/fhir/Patient/' + pid).json['meta']['versionId'], '1',
           'an unchanged resource gets no new version')


def everything_ids(pid, extra=''):
    pages = follow_pages(c, '/fhir/Patient/%s/$everything?_count=100%s' % (pid, extra))
    got = []
    for p in pages:
        for e in p.get('entry', []):
            got.append((e['resource']['resourceType'], e['resource']['id']))
    eq(len(got), pages[0].get('total'), 'Bundle.total vs the entries of every page')
    return got


def t_everything():
    comps = expected_compartments(F2021)
    check(len(comps) == 5, 'five 2021 patients, found %d' % len(comps))
    for pid, want in comps.items():
        got = everything_ids(pid)
        eq(len(got), len(set(got)), 'no resource twice across pages')
        missing, extra = want - set(got), set(got) - want
        check(not missing and not extra, 'Patient/%s: missing %s, extra %s' % (
            pid, sorted(missing)[:5], sorted(extra)[:5]))
    pid, want = next(iter(comps.items()))
    got = everything_ids(pid, '&_type=Observation,Encounter')
    eq(set(got), {k for k in want if k[0] in ('Observation', 'Encounter')}, '_type')
    r = c.get('/fhir/Patient/%s/$everything?_since=2999-01-01T00:00:00Z' % pid)
    expect_status(r, 200)
    eq(r.json.get('total'), 0, '_since in the future')
    r = c.get('/fhir/Patient/not-there/$everything')
    expect_outcome(r, (404,))
    r = c.get('/fhir/Patient/%s/$everything?_type=Nope' % pid)
    expect_outcome(r, (400,))


def t_direct_db():
    s = Server(name='direct')
    rc, out, err = run_ehr('import', *store_args(s.db, s.store), '--quiet', S2019)
    eq(rc, 1, 'exit status with one non-FHIR file in r4-2019 (stderr: %s)' % err[-2000:])
    check('INDEX_all_617_bundles_resource_counts.json' in err and 'not a FHIR' in err,
          'the non-FHIR file is named: %r' % err[-1000:])
    s.start()
    eq(server_counts(s.client(), EXP2019), EXP2019, 'resources per type after a direct import')
    comps = expected_compartments(F2019)
    sc = s.client()
    for pid, want_c in comps.items():
        pages = follow_pages(sc, '/fhir/Patient/%s/$everything?_count=500' % pid)
        got = {(e['resource']['resourceType'], e['resource']['id'])
               for p in pages for e in p.get('entry', [])}
        eq(got, want_c, 'Patient/%s $everything' % pid)
    s.stop()


def t_corrupt_ndjson():
    d = tempfile.mkdtemp(prefix='ehr-import-')
    path = os.path.join(d, 'bad.ndjson')
    v = unique('nd')
    lines = [
        {'resourceType': 'Patient', 'id': v + '-1', 'name': [{'family': 'Good'}]},
        '{"resourceType": "Patient", "id": ',
        {'resourceType': 'Patient', 'id': v + '-3', 'birthDate': '2001-13-01'},
        {'resourceType': 'Patient', 'id': v + '-4', 'name': [{'family': 'Good'}]},
    ]
    with open(path, 'w') as f:
        for x in lines:
            f.write((x if isinstance(x, str) else json.dumps(x)) + '\n')
    rc, out, err = import_url(srv, path)
    eq(rc, 1, 'exit status with bad lines')
    check('%s:2:' % path in err, 'line 2 (bad JSON) named: %r' % err)
    check('%s:3:' % path in err and 'birthDate' in err, 'line 3 (bad date) named: %r' % err)
    eq(c.get('/fhir/Patient/%s-1' % v).status, 200, 'line 1 loaded')
    eq(c.get('/fhir/Patient/%s-4' % v).status, 200, 'line 4 loaded')
    eq(c.get('/fhir/Patient/%s-3' % v).status, 404, 'line 3 not loaded')


def t_sigkill_during_import():
    s = Server(name='killed').start()
    p = subprocess.Popen([EHR_BIN, 'import', '--url', s.base() + '/fhir', '--token', s.token,
                          '--quiet', S2021], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    s.kill()
    p.communicate(timeout=600)
    s.start()
    rc, out, err = import_url(s, S2021)
    eq(rc, 0, 're-run after the crash (stderr: %s)' % err[-2000:])
    eq(server_counts(s.client(), EXP2021), EXP2021, 'resources per type after crash and re-run')
    s.stop()


def t_sigkill_direct():
    s = Server(name='killed-direct')
    p = subprocess.Popen([EHR_BIN, 'import', *store_args(s.db, s.store), '--quiet'] + F2019,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    p.send_signal(signal.SIGKILL)
    p.wait()
    rc, out, err = run_ehr('import', *store_args(s.db, s.store), '--quiet', *F2019)
    eq(rc, 0, 're-run after SIGKILL of the importer (stderr: %s)' % err[-2000:])
    s.start()
    eq(server_counts(s.client(), EXP2019), EXP2019, 'resources per type')
    s.stop()


def read_ndjson_dir(d):
    """{type: {id: resource without versionId/lastUpdated}} of an export folder."""
    out = {}
    for f in sorted(glob.glob(os.path.join(d, '*.ndjson'))):
        t = os.path.basename(f)[:-len('.ndjson')]
        with open(f, encoding='utf-8') as fh:
            for n, line in enumerate(fh, 1):
                res = json.loads(line)
                eq(res['resourceType'], t, '%s:%d resourceType' % (f, n))
                meta = dict(res.get('meta', {}))
                meta.pop('versionId', None)
                meta.pop('lastUpdated', None)
                res['meta'] = meta
                out.setdefault(t, {})[res['id']] = res
    return out


def t_export_round_trip():
    d = tempfile.mkdtemp(prefix='ehr-export-')
    rc, out, err = run_ehr('export', *store_args(srv.db, srv.store), '--out', d)
    eq(rc, 0, 'export exit status (stderr: %s)' % err[-2000:])
    first = read_ndjson_dir(d)
    eq({t: len(v) for t, v in first.items() if t in EXP2021},
       EXP2021, 'exported resources per type vs the input files')
    s = Server(name='reimport')
    rc, out, err = run_ehr('import', *store_args(s.db, s.store), '--quiet', d)
    eq(rc, 0, 're-import exit status (stderr: %s)' % err[-2000:])
    d2 = tempfile.mkdtemp(prefix='ehr-export2-')
    rc, out, err = run_ehr('export', *store_args(s.db, s.store), '--out', d2)
    eq(rc, 0, 'second export')
    second = read_ndjson_dir(d2)
    eq(sorted(second), sorted(first), 'types')
    for t in first:
        eq(sorted(second[t]), sorted(first[t]), '%s ids' % t)
        for i, res in first[t].items():
            check(json_equal(res, second[t][i]), '%s/%s differs after the round trip: %s' % (
                t, i, json_diff(res, second[t][i])))
    # --type and --since
    d3 = tempfile.mkdtemp(prefix='ehr-export3-')
    rc, out, err = run_ehr('export', *store_args(s.db, s.store), '--out', d3, '--type', 'Patient,Encounter')
    eq(sorted(os.listdir(d3)), ['Encounter.ndjson', 'Patient.ndjson'], '--type files')
    d4 = tempfile.mkdtemp(prefix='ehr-export4-')
    rc, out, err = run_ehr('export', *store_args(s.db, s.store), '--out', d4, '--since', '2999-01-01T00:00:00Z')
    eq(os.listdir(d4), [], '--since in the future exports nothing')


test_expect_success('ehr import --url loads r4-2021 (practitioners and hospitals first); counts '
                    'per type equal those computed from the files', t_import_url)
test_expect_success('re-running the import creates nothing new', t_rerun)
test_expect_success('$everything of each patient is exactly its compartment; _type, _since, '
                    'unknown patient', t_everything)
test_expect_success('ehr export while the server runs, re-import into an empty database: the '
                    'same resources; --type, --since', t_export_round_trip)
test_expect_success('ehr import --db (server stopped): every Synthea file; a non-FHIR file is '
                    'named and skipped', t_direct_db)
test_expect_success('NDJSON with bad lines: each named with its line, the others loaded',
                    t_corrupt_ndjson)
test_expect_success('server SIGKILLed during an import: the re-run completes without duplicates',
                    t_sigkill_during_import)
test_expect_success('importer SIGKILLed: the re-run completes without duplicates',
                    t_sigkill_direct)
test_done()
