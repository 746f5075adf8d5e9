#!/usr/bin/env python3
"""
test_crash.py - crash safety. Writer threads create and update patients and
record every write the server acknowledged (id, version, a content marker).
The server is killed with SIGKILL in the middle of the stream, restarted on the
same database, and every acknowledged write must be readable with its content;
a write that was in flight may or may not have happened, but nothing else.
Then SQLite's integrity check must pass, on the crash image itself (database
and WAL as the kill left them) and after the restart.
"""
import os
import random
import shutil
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

WRITERS = 6
ACKS_BEFORE_KILL = 1000    # per round; the kill lands while writers are busy
ROUNDS = 3
SQLITE3 = shutil.which('sqlite3')

srv = start_server(name='crash')
SYS = 'http://example.org/ehr-test/' + unique('crash')

acked = {}          # id -> list of (version, marker), in order of acknowledgement;
                    # marker DELETED for an acknowledged delete (nothing follows it)
acked_lock = threading.Lock()
maybe_deleted = set()  # ids whose delete was sent but not acknowledged (it may have happened)
crash_images = []   # directories holding copies of the database taken right after a kill


def patient_body(marker, rid=None):
    p = {'resourceType': 'Patient',
         'identifier': [{'system': SYS, 'value': marker}],
         'name': [{'family': 'Crash', 'given': [marker]}],
         'birthDate': '1990-05-06'}
    if rid:
        p['id'] = rid
    return p


def marker_of(res):
    try:
        return res['identifier'][0]['value']
    except (KeyError, IndexError, TypeError):
        return None


def writer(n, rnd, stop, progress):
    """Create and update this writer's own patients until the server dies."""
    cl = srv.client(retry=False, timeout=30)
    mine = []
    rng = random.Random(n * 1000 + rnd)
    i = 0
    try:
        while not stop.is_set():
            i += 1
            marker = 'r%d-w%d-%d' % (rnd, n, i)
            x = rng.random()
            if mine and x < 0.08:
                rid = mine.pop(rng.randrange(len(mine)))   # never written again
                with acked_lock:
                    maybe_deleted.add(rid)
                r = cl.delete('/fhir/Patient/%s' % rid)
                if r.status not in (200, 204):
                    progress['errors'].append('DELETE %s answered %d: %r' % (rid, r.status, r.body[:300]))
                    return
                with acked_lock:
                    maybe_deleted.discard(rid)
                    acked.setdefault(rid, []).append((None, 'DELETED'))
                    progress['acks'] += 1
                    if progress['acks'] >= ACKS_BEFORE_KILL:
                        progress['enough'].set()
                continue
            if mine and x < 0.6:
                rid = rng.choice(mine)
                r = cl.put('/fhir/Patient/%s' % rid, json=patient_body(marker, rid))
                if r.status != 200:
                    progress['errors'].append('PUT %s answered %d: %r' % (rid, r.status, r.body[:300]))
                    return
            else:
                r = cl.post('/fhir/Patient', json=patient_body(marker))
                if r.status != 201:
                    progress['errors'].append('POST answered %d: %r' % (r.status, r.body[:300]))
                    return
                rid = location_parts(r.header('Location'), 'Patient')[1]
                mine.append(rid)
            vid = parse_etag_version(r.header('ETag'))
            with acked_lock:
                acked.setdefault(rid, []).append((vid, marker))
                progress['acks'] += 1
                if progress['acks'] >= ACKS_BEFORE_KILL:
                    progress['enough'].set()
    except Exception as e:  # noqa: BLE001  (the kill: connection refused/reset)
        progress['died'].append('%s: %s' % (e.__class__.__name__, e))
    finally:
        cl.close()


def copy_crash_image(rnd):
    d = os.path.join(srv.tmpdir, 'crash-image-%d' % rnd)
    os.makedirs(d, exist_ok=True)
    for suffix in ('', '-wal', '-journal'):
        src = srv.db + suffix
        if os.path.exists(src):
            shutil.copy2(src, os.path.join(d, 'ehr.db' + suffix))
    crash_images.append(d)


def write_and_kill(rnd):
    stop = threading.Event()
    progress = {'acks': 0, 'enough': threading.Event(), 'errors': [], 'died': []}
    ts = [threading.Thread(target=writer, args=(n, rnd, stop, progress)) for n in range(WRITERS)]
    for t in ts:
        t.start()
    got = progress['enough'].wait(120)
    srv.kill()                   # SIGKILL while the writers are still writing
    copy_crash_image(rnd)
    stop.set()
    for t in ts:
        t.join(60)
    check(not progress['errors'], 'writes failed before the kill: %s' % progress['errors'][:3])
    check(got, 'only %d writes acknowledged in 120s' % progress['acks'])
    note('round %d: %d writes acknowledged, %d writers cut off by the kill'
         % (rnd, progress['acks'], len(progress['died'])))


def verify_after_restart():
    srv.start()
    cl = srv.client()
    problems = []
    with acked_lock:
        snapshot = {k: list(v) for k, v in acked.items()}
    deleted = 0
    for rid, writes in snapshot.items():
        if writes[-1][1] == 'DELETED':
            deleted += 1
            r = cl.get('/fhir/Patient/%s' % rid)
            if r.status != 410:
                problems.append('Patient/%s: delete acknowledged, read answers %d' % (rid, r.status))
            writes = writes[:-1]
            for vid, marker in writes:
                r = cl.get('/fhir/Patient/%s/_history/%s' % (rid, vid))
                if r.status != 200 or marker_of(r.json) != marker:
                    problems.append('Patient/%s version %s (acknowledged, then deleted) answers %d, marker %r'
                                    % (rid, vid, r.status, marker_of(r.json)))
            continue
        for vid, marker in writes:
            r = cl.get('/fhir/Patient/%s/_history/%s' % (rid, vid))
            if r.status != 200:
                problems.append('Patient/%s version %s (acknowledged) answers %d' % (rid, vid, r.status))
                continue
            if marker_of(r.json) != marker:
                problems.append('Patient/%s version %s has marker %r, acknowledged %r'
                                % (rid, vid, marker_of(r.json), marker))
        last_vid, last_marker = writes[-1]
        r = cl.get('/fhir/Patient/%s' % rid)
        if r.status == 410 and rid in maybe_deleted:
            continue      # its delete was in flight at the kill and did commit
        if r.status != 200:
            problems.append('Patient/%s answers %d after restart' % (rid, r.status))
            continue
        cur = r.json['meta']['versionId']
        if cur == last_vid:
            if marker_of(r.json) != last_marker:
                problems.append('Patient/%s current version %s has marker %r, acknowledged %r'
                                % (rid, cur, marker_of(r.json), last_marker))
        elif not (cur.isdigit() and last_vid.isdigit() and int(cur) == int(last_vid) + 1):
            # one unacknowledged write per writer may have committed, no more
            problems.append('Patient/%s is at version %s; last acknowledged %s'
                            % (rid, cur, last_vid))
    cl.close()
    check(not problems, '%d problems after restart:\n%s' % (len(problems), '\n'.join(problems[:30])))
    return sum(len(w) for w in snapshot.values()), len(snapshot), deleted


def t_round(rnd):
    write_and_kill(rnd)
    writes, ids, deleted = verify_after_restart()
    note('round %d: all %d acknowledged writes to %d patients (%d deleted) as acknowledged after restart'
         % (rnd, writes, ids, deleted))


for rnd in range(1, ROUNDS + 1):
    test_expect_success('crash round %d: SIGKILL during %d writers\' stream, restart, every acknowledged '
                        'write readable with its content' % (rnd, WRITERS), t_round, rnd)


def t_search_consistent():
    if not srv.running():
        srv.start()
    cl = srv.client()
    pages = follow_pages(cl, '/fhir/Patient?identifier=%s&_count=500' % quote(SYS + '|'))
    found = {e['resource']['id'] for p in pages for e in bundle_entries(p)}
    live = {rid for rid, w in acked.items() if w[-1][1] != 'DELETED'}
    gone = {rid for rid, w in acked.items() if w[-1][1] == 'DELETED'}
    check(not (gone & found), '%d deleted patients still found by search, e.g. %s'
          % (len(gone & found), sorted(gone & found)[:5]))
    missing = live - found - maybe_deleted
    check(not missing, '%d acknowledged patients not found by search after the crash (index lost?), e.g. %s'
          % (len(missing), sorted(missing)[:5]))
    cl.close()


test_expect_success('after the crashes search by identifier finds every live acknowledged patient and no deleted one',
                    t_search_consistent)


def integrity(db):
    p = subprocess.run([SQLITE3, db, 'PRAGMA integrity_check;'], capture_output=True, text=True, timeout=120)
    return p.returncode, (p.stdout + p.stderr).strip()


def t_integrity_crash_image():
    if STORE == 'postgres':
        raise Skip('SQLite file check (on PostgreSQL the crash is the server\'s, not the database\'s)')
    if not SQLITE3:
        raise Skip('the sqlite3 command-line program is not installed (scripts/install-deps.sh installs it)')
    check(crash_images, 'no crash image was taken')
    for d in crash_images:
        rc, out = integrity(os.path.join(d, 'ehr.db'))
        check(rc == 0 and out == 'ok', '%s: PRAGMA integrity_check gave %r (status %d)' % (d, out, rc))


def t_integrity_after():
    if STORE == 'postgres':
        srv.stop()
        rc, out, _ = srv.ehr('audit', 'verify', check_rc=False)
        eq(rc, 0, 'the audit chain after the crashes: %s' % out)
        return
    if not SQLITE3:
        raise Skip('the sqlite3 command-line program is not installed (scripts/install-deps.sh installs it)')
    srv.stop()
    rc, out = integrity(srv.db)
    check(rc == 0 and out == 'ok', 'PRAGMA integrity_check gave %r (status %d)' % (out, rc))
    p = subprocess.run([SQLITE3, srv.db, 'PRAGMA journal_mode;'], capture_output=True, text=True, timeout=60)
    eq(p.stdout.strip(), 'wal', 'journal_mode (DESIGN.md: SQLite runs in WAL mode)')


test_expect_success('the database as the SIGKILL left it passes PRAGMA integrity_check', t_integrity_crash_image)
test_expect_success('the database after restart and a clean stop passes PRAGMA integrity_check and is in WAL mode',
                    t_integrity_after)

test_done()
