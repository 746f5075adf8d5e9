#!/usr/bin/env python3
"""
test_audit_journal.py - the audit journal (docs/security.md, "Audit log";
src/audit/journal.h). The audit record of every read is appended to
DB.audit-journal before the read is answered and applied into the
hash-chained audit log in the background; a crash must lose none of them.

The server runs with --audit-sync 60000, so that nothing is applied in the
background during the test: what the log shows comes from the journal by
way of the AuditEvent view (which applies it first), `ehr audit` (which
applies a running server's journal) or the recovery at the next start.
"""
import os
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

READS = 40

if STORE == 'postgres':
    test_skip('audit journal', 'the journal serves a local SQLite database; on PostgreSQL every '
              'read is audited through the database (test_auth.py checks it survives a kill)')
    test_done()

srv = start_server(extra_args=['--audit-sync', '60000'], name='journal')
c = srv.client()
JOURNAL = srv.db + '.audit-journal'
state = {}


def journal_records():
    """The journal's records, checked independently of the server: each line
    is CRC LEN TIME EVENT with CRC-32 (zlib) of everything after 'CRC '."""
    with open(JOURNAL, 'rb') as f:
        data = f.read()
    lines = data.split(b'\n')
    check(lines[0].startswith(b'EHR-AUDIT-JOURNAL 1 '), 'journal header: %r' % lines[0][:40])
    check(lines[-1] == b'', 'the journal ends with a whole record')
    out = []
    for ln in lines[1:-1]:
        crc, rest = ln[:8], ln[9:]
        eq(ln[8:9], b' ', 'field separator')
        eq(int(crc, 16), zlib.crc32(rest) & 0xffffffff, 'CRC of a journal record')
        n, t, ev = rest.split(b' ', 2)
        eq(int(n), len(ev), 'length of a journal record')
        out.append((int(t), jsonlib_loads(ev)))
    return out


def jsonlib_loads(b):
    import json
    return json.loads(b.decode('utf-8'))


def audit_reads(client, pid):
    """AuditEvents of reads of Patient/pid, as the auditor's view shows them."""
    r = client.get('/fhir/AuditEvent?patient=Patient/%s&subtype=read&_count=1000' % pid)
    expect_status(r, 200)
    out = []
    for e in r.json.get('entry', []):
        ae = e['resource']
        if any(en.get('what', {}).get('reference') == 'Patient/' + pid
               for en in ae.get('entity', [])) and \
                any(s.get('code') == 'read' for s in ae.get('subtype', [])):
            out.append(ae)
    return out


def t_reads_journaled():
    r = c.post('/fhir/Patient', json={'resourceType': 'Patient', 'gender': 'female'})
    expect_status(r, 201)
    pid = r.json['id']
    state['pid'] = pid
    for _ in range(READS):
        expect_status(c.get('/fhir/Patient/%s' % pid), 200)
    check(os.path.exists(JOURNAL), 'the journal %s exists beside the database' % JOURNAL)
    recs = journal_records()
    reads = [ev for _, ev in recs if ev.get('action') == 'read' and ev.get('id') == pid]
    eq(len(reads), READS, 'one journal record per read answered')
    for ev in reads:
        eq(ev.get('user'), 'harness-admin', 'who read')
        eq(ev.get('type'), 'Patient', 'what was read')
    # the create's record is in its own transaction, not in the journal
    check(not any(ev.get('action') == 'create' and ev.get('id') == pid for _, ev in recs),
          'writes are audited in their transaction, not through the journal')


test_expect_success('every read answered has its record in the journal (CRC-checked lines)',
                    t_reads_journaled)


def t_view_applies():
    # nothing applies in the background (60 s period); the view applies first
    got = audit_reads(c, state['pid'])
    eq(len(got), READS, 'AuditEvent view shows every read at once')
    # `ehr audit report` from another process while the server runs
    _, out, _ = srv.ehr('audit', 'report', '--action', 'read', '--patient', state['pid'])
    lines = [l for l in out.splitlines() if ' read ok ' in l and state['pid'] in l]
    eq(len(lines), READS, 'ehr audit report sees them while the server runs (no duplicates)')


test_expect_success('the AuditEvent view and ehr audit report see journaled reads at once',
                    t_view_applies)


def t_kill_then_restart():
    pid = state['pid']
    more = 150   # more than one chunk of work (128 records)
    for _ in range(more):
        expect_status(c.get('/fhir/Patient/%s' % pid), 200)
    srv.kill()   # SIGKILL right after the answers: nothing applied them
    # a torn record at the end, as a crash in the middle of a write leaves
    with open(JOURNAL, 'ab') as f:
        f.write(b'0000abcd 120 1700000000000000 {"action":"read","id":"torn')
    srv.start()
    c2 = srv.client()
    got = audit_reads(c2, pid)
    eq(len(got), READS + more, 'every read answered before the kill is in the audit log')
    # no record of the torn tail
    _, out, _ = srv.ehr('audit', 'report')
    check('torn' not in out, 'the torn record was dropped')
    rc, out, err = srv.ehr('audit', 'verify', check_rc=False)
    eq(rc, 0, 'ehr audit verify after the kill: %s %s' % (out, err))
    check('chain is intact' in out, 'verify says intact: %r' % out)


test_expect_success('SIGKILL after reads, restart: every read in the chain, verify passes',
                    t_kill_then_restart)


def t_kill_then_cli():
    # the next start need not be a server: any ehr command on the database
    # applies what a crashed server left
    pid = state['pid']
    c3 = srv.client()
    before = len(audit_reads(c3, pid))
    for _ in range(10):
        expect_status(c3.get('/fhir/Patient/%s' % pid), 200)
    srv.kill()
    rc, out, err = srv.ehr('audit', 'verify', check_rc=False)
    eq(rc, 0, 'verify on the crash image: %s %s' % (out, err))
    _, out, _ = srv.ehr('audit', 'report', '--action', 'read', '--patient', pid)
    lines = [l for l in out.splitlines() if ' read ok ' in l and pid in l]
    # the view's own read of the log is audited as a search, not as a read
    eq(len(lines), before + 10, 'the reads before the kill, applied by ehr audit')
    srv.start()
    eq(len(audit_reads(srv.client(), pid)), before + 10, 'and not applied twice at the restart')


test_expect_success('SIGKILL, then ehr audit on the database: records applied once',
                    t_kill_then_cli)


def t_rotation_under_load():
    # a tiny rotation threshold (a test knob, src/repo/auditj.c) and a 5 ms
    # period: generations turn over many times while readers run, and a
    # kill lands in the middle of all that
    os.environ['EHR_AUDIT_JOURNAL_ROTATE'] = '4096'
    try:
        s3 = Server(extra_args=['--audit-sync', '5'], name='rotate').start()
    finally:
        del os.environ['EHR_AUDIT_JOURNAL_ROTATE']
    r = s3.client().post('/fhir/Patient', json={'resourceType': 'Patient'})
    expect_status(r, 201)
    pid = r.json['id']
    acked = [0]
    errors = []
    lock = threading.Lock()
    stop = threading.Event()

    def reader():
        cl = s3.client(retry=False, timeout=30)
        while not stop.is_set():
            try:
                rr = cl.get('/fhir/Patient/%s' % pid)
            except Exception:
                return  # the server was killed
            if rr.status != 200:
                errors.append('read answered %d' % rr.status)
                return
            with lock:
                acked[0] += 1

    def generation():
        with open(s3.db + '.audit-journal', 'rb') as f:
            return int(f.readline().split()[2])

    # read until the journal has turned over twice (each turn waits for an
    # fsync of the database: slow on a busy disk)
    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.time() + 60
    while generation() < 4 and time.time() < deadline and all(t.is_alive() for t in threads):
        time.sleep(0.02)
    stop.set()
    for t in threads:
        t.join()
    stop.clear()
    check(not errors, 'reads answered: %s' % errors[:3])
    gen = generation()
    check(gen >= 4, 'the journal rotated while reads ran (generation %d, 2 at the start)' % gen)
    first = acked[0]

    def logged():
        # `ehr audit report` (no page limit), from another process
        _, out, _ = s3.ehr('audit', 'report', '--action', 'read', '--patient', pid)
        return len([ln for ln in out.splitlines() if ' read ok ' in ln and pid in ln])

    eq(logged(), first, 'every read in the chain, once')
    # again, and kill while the readers run
    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    while acked[0] < first + 150 and all(t.is_alive() for t in threads):
        time.sleep(0.01)
    s3.kill()
    stop.set()
    for t in threads:
        t.join()
    check(not errors, 'reads answered: %s' % errors[:3])
    answered = acked[0]
    s3.start()
    got = logged()
    # each answered read is in; a read cut off by the kill may be too (its
    # record is written before the answer), at most one per reader
    check(answered <= got <= answered + 4,
          'after the kill: %d reads answered, %d in the audit log' % (answered, got))
    rc, out, err = s3.ehr('audit', 'verify', check_rc=False)
    eq(rc, 0, 'verify: %s %s' % (out, err))


test_expect_success('journal generations turn over under concurrent reads; a kill in the middle '
                    'loses no answered read and duplicates none', t_rotation_under_load)


def t_sync_off():
    s2 = Server(extra_args=['--audit-sync', '0'], name='nojournal').start()
    c2 = s2.client()
    r = c2.post('/fhir/Patient', json={'resourceType': 'Patient'})
    expect_status(r, 201)
    for _ in range(5):
        expect_status(c2.get('/fhir/Patient/%s' % r.json['id']), 200)
    check(not os.path.exists(s2.db + '.audit-journal'), '--audit-sync 0: no journal')
    eq(len(audit_reads(c2, r.json['id'])), 5, 'reads audited through the database')
    s2.stop()
    rc, _, err = s2.ehr('serve', '--audit-sync', '60001', check_rc=False)
    eq(rc, 2, '--audit-sync over 60000 refused')
    check('--audit-sync' in err, 'the message names the option: %r' % err)


test_expect_success('--audit-sync 0 turns the journal off; out-of-range values refused',
                    t_sync_off)

test_done()
