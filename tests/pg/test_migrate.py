#!/usr/bin/env python3
"""
test_migrate.py - `ehr migrate --from SQLITE_PATH --to CONNINFO`
(EHR_TEST_STORE=postgres).

A SQLite server is loaded with the Synthea patients (transaction Bundles
from ../shared/data/synthea/r4-2019), then updates and deletes make more
versions; migrated to a new PostgreSQL database, every version must be
there with the same bytes. The expected values are read from the SQLite
file with Python's sqlite3 and compared with what psql reads from
PostgreSQL (MD5 of each version), not taken from ehr's own report.
"""
import glob
import hashlib
import os
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'api'))
from harness import *  # noqa: E402,F401,F403
from harness import Server  # noqa: E402

if STORE != 'postgres':
    print('1..0 # SKIP needs EHR_TEST_STORE=postgres')
    sys.exit(0)

SYNTHEA = os.path.join(DATA_DIR, 'synthea', 'r4-2019')
src = Server(name='pg-migrate-src', store='sqlite').start()
target = pg_new_db()
S = {}


def migrate(*extra):
    p = subprocess.run([EHR_BIN, 'migrate', '--from', src.db, '--to', target] + list(extra),
                       capture_output=True, text=True, timeout=600)
    return p.returncode, p.stdout + p.stderr


def rewrite(x, urns):
    """urn:uuid references of a transaction Bundle, as Type/id."""
    if isinstance(x, dict):
        return {k: (urns.get(v, v) if k == 'reference' and isinstance(v, str) else
                    rewrite(v, urns)) for k, v in x.items()}
    if isinstance(x, list):
        return [rewrite(v, urns) for v in x]
    return x


def load_bundle(path):
    b = loads_exact(open(path, 'rb').read())
    if not isinstance(b, dict) or b.get('resourceType') != 'Bundle':
        return 0
    urns = {e['fullUrl']: '%s/%s' % (e['resource']['resourceType'], e['resource']['id'])
            for e in b.get('entry', []) if e.get('fullUrl', '').startswith('urn:uuid:')
            and e.get('resource', {}).get('id')}
    c = src.client()
    n = 0
    for e in b.get('entry', []):
        r = rewrite(e['resource'], urns)
        if not r.get('id'):
            continue
        resp = c.put('/fhir/%s/%s' % (r['resourceType'], r['id']), body=dumps(r),
                     content_type='application/fhir+json')
        expect_status(resp, 200, 201)
        n += 1
    return n


def t_load():
    c = src.client()
    files = sorted(glob.glob(os.path.join(SYNTHEA, '*.json')))[:10]
    n = 0
    if files:
        import concurrent.futures
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            n = sum(ex.map(load_bundle, files))
    if n == 0:
        note('%s is absent: generated patients only' % SYNTHEA)
    # more versions and deletions, and characters COPY must escape
    for i in range(30):
        pid = 'mig-%d' % i
        for v in range(3):
            r = c.put('/fhir/Patient/%s' % pid, json={
                'resourceType': 'Patient', 'id': pid,
                'name': [{'family': 'Tab\there\\back "q" %d' % v, 'given': ['Ünïcødé\nline']}]})
            expect_status(r, 200, 201)
        if i % 3 == 0:
            expect_status(c.delete('/fhir/Patient/%s' % pid), 200, 204)
    # an HL7 v2 message: its raw bytes (a backslash, a tab, Latin-1) move as bytea
    raw = ('MSH|^~\\&|MIGAPP|MIGFAC|EHR|EHR|20240301101500||ADT^A01|mig-ctl-1|P|2.5.1\r'
           'EVN|A01|20240301101500\r'
           'PID|1||mig-mrn^^^HOSPA^MR||Mu\tller^J\xf6rg||19700315|M\r').encode('latin-1')
    r = c.post('/hl7v2', body=raw, content_type='x-application/hl7-v2+er7')
    expect_status(r, 200)
    S['hl7'] = raw
    S['bundles'] = n
    src.stop()


test_expect_success('a SQLite database with Synthea patients, updates and deletes', t_load)


def t_migrate():
    rc, out = migrate()
    eq(rc, 0, 'ehr migrate: %s' % out[-2000:])
    check('rows copied' in out, 'progress printed: %r' % out[:500])
    check('DIFFERENT' not in out, out)


test_expect_success('ehr migrate copies and verifies', t_migrate)


def t_every_version():
    db = sqlite3.connect(src.db)
    want = {}
    for t, i, v, d, content in db.execute(
            'SELECT type, id, version, deleted, content FROM resource'):
        b = content if isinstance(content, bytes) else (content or '').encode()
        want[(t, i, v)] = (bool(d), hashlib.md5(b).hexdigest() if content is not None else None)
    n_audit = db.execute('SELECT count(*) FROM audit').fetchone()[0]
    db.close()
    check(len(want) > 90, 'the source has versions (%d)' % len(want))
    rc, out = pg_sql(target, "SELECT type, id, version, deleted, coalesce(md5(convert_to(content, "
                             "'UTF8')), '-') FROM resource;")
    eq(rc, 0, 'psql: %s' % out[:300])
    got = {}
    for line in out.splitlines():
        t, i, v, d, h = line.split('|')
        got[(t, i, int(v))] = (d == 't', None if h == '-' else h)
    missing = [k for k in want if k not in got]
    eq(missing[:5], [], 'versions missing in PostgreSQL (of %d)' % len(want))
    differ = [k for k in want if k in got and got[k] != want[k]]
    eq(differ[:5], [], 'versions with other bytes')
    eq(len(got), len(want), 'no extra versions')
    rc, out = pg_sql(target, 'SELECT count(*) FROM audit;')
    eq(int(out.strip()), n_audit, 'audit records')
    note('%d versions (%d Synthea resources, and updates), %d audit records, all equal'
         % (len(want), S.get('bundles', 0), n_audit))


test_expect_success('every version present in PostgreSQL with the same bytes (checked with psql)',
                    t_every_version)


def t_serve_migrated():
    pg = Server(name='pg-migrate-dst', db=target, store='postgres')
    pg.token = src.token    # users and tokens moved too
    pg.start()
    c = pg.client()
    r = c.get('/fhir/Patient/mig-1')
    expect_status(r, 200)
    eq(r.json['meta']['versionId'], '3', 'the current version')
    expect_status(c.get('/fhir/Patient/mig-0'), 410)
    r = c.get('/fhir/Patient/mig-1/_history')
    expect_status(r, 200)
    eq(r.json['total'], 3, 'history of mig-1')
    r = c.put('/fhir/Patient/mig-1', json={'resourceType': 'Patient', 'id': 'mig-1'})
    expect_status(r, 200)
    eq(r.json['meta']['versionId'], '4', 'writes continue after the copied versions')
    r = c.post('/fhir/Patient', json={'resourceType': 'Patient'})
    expect_status(r, 201)
    rc, out, _ = pg.ehr('audit', 'verify', check_rc=False)
    eq(rc, 0, 'the moved audit chain continues: %s' % out)
    rc, out = pg_sql(target, "SELECT encode(raw, 'hex') FROM hl7_message WHERE control_id = "
                             "'mig-ctl-1';")
    eq(rc, 0, out)
    eq(bytes.fromhex(out.strip()), S['hl7'], 'the HL7 message bytes')
    raw2 = S['hl7'].replace(b'mig-ctl-1', b'mig-ctl-2')
    r = c.post('/hl7v2', body=raw2, content_type='x-application/hl7-v2+er7')
    expect_status(r, 200)
    pg.stop()


test_expect_success('a server on the migrated database serves it and writes on', t_serve_migrated)


def t_verify_only_and_refusals():
    # the copy has moved on: verify-only names the difference
    rc, out = migrate('--verify-only')
    eq(rc, 1, 'verify-only after writes to the copy: %s' % out[-500:])
    check('Patient' in out, 'names the type: %r' % out[-500:])
    # into a database that holds data: refused, nothing written
    rc, out = migrate()
    eq(rc, 1, 'a second migrate into a non-empty database')
    check('not empty' in out, out[-300:])
    fresh = pg_new_db()
    p = subprocess.run([EHR_BIN, 'migrate', '--from', src.db, '--to', fresh],
                       capture_output=True, text=True, timeout=600)
    eq(p.returncode, 0, p.stdout[-300:] + p.stderr)
    rc, out = pg_sql(fresh, "UPDATE resource SET content = replace(content, 'Tab', 'Tub') "
                            "WHERE id = 'mig-2' AND version = 2;")
    eq(rc, 0, out)
    p = subprocess.run([EHR_BIN, 'migrate', '--from', src.db, '--to', fresh, '--verify-only'],
                       capture_output=True, text=True, timeout=600)
    eq(p.returncode, 1, 'an edited version is found: %s' % p.stdout[-500:])
    check('Patient differs' in p.stderr and 'content' in p.stderr, p.stderr)


test_expect_success('--verify-only finds a changed version; a non-empty target is refused',
                    t_verify_only_and_refusals)

test_done()
