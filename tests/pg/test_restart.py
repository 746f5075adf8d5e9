#!/usr/bin/env python3
"""
test_restart.py - PostgreSQL stopped and started again under load
(EHR_TEST_STORE=postgres; a cluster of its own, so that stopping it
disturbs no other test).

While writers and readers run, the database goes away for a while:
  - every answer is a success or a 503 with an OperationOutcome whose
    issue code is "transient" (never a 500, never a false success);
  - while it is down, reads and writes answer 503;
  - when it is back, the server reconnects by itself and serves again;
  - every write acknowledged (201), before, during or after, is there.
"""
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'api'))
from harness import *  # noqa: E402,F401,F403
from harness import Server, PG_CLUSTER  # noqa: E402

if STORE != 'postgres':
    print('1..0 # SKIP needs EHR_TEST_STORE=postgres')
    sys.exit(0)


def cluster(*args):
    p = subprocess.run([PG_CLUSTER] + list(args), capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise TestFailure('cluster.sh %s: %s' % (' '.join(args), p.stderr.strip()))
    return p.stdout.strip()


base = cluster('start')
pgdir = base.split()[0][len('host='):]
rc, out = pg_sql(base + ' dbname=postgres', 'CREATE DATABASE restart_test;')
if rc != 0:
    raise SystemExit('Bail out! %s' % out)
srv = Server(name='pg-restart', db=base + ' dbname=restart_test').start()

acked = {}
answers = []
lock = threading.Lock()
stop = threading.Event()


def writer(i):
    cl = srv.client()
    k = 0
    while not stop.is_set():
        k += 1
        pid = 'rs-%d-%d' % (i, k)
        try:
            r = cl.put('/fhir/Patient/%s' % pid, json={'resourceType': 'Patient', 'id': pid,
                                                       'gender': 'other'})
        except Exception as e:  # the server itself must not go away
            with lock:
                answers.append(('exception', str(e)))
            continue
        with lock:
            answers.append((r.status, r.json))
            if r.status == 201:
                acked[pid] = True
        if r.status == 503:
            time.sleep(0.05)


def reader():
    cl = srv.client()
    while not stop.is_set():
        try:
            r = cl.get('/fhir/Patient?_count=5')
        except Exception as e:
            with lock:
                answers.append(('exception', str(e)))
            continue
        with lock:
            answers.append((r.status, r.json))
        if r.status == 503:
            time.sleep(0.05)


threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
threads.append(threading.Thread(target=reader))
for t in threads:
    t.start()


def t_down():
    time.sleep(1.0)
    cluster('down', pgdir)
    try:
        time.sleep(0.5)
        cl = srv.client()
        for r in (cl.get('/fhir/Patient?_count=1'),
                  cl.post('/fhir/Patient', json={'resourceType': 'Patient'})):
            eq(r.status, 503, '%s while the database is down' % r.method)
            issues = (r.json or {}).get('issue', [])
            check(r.json and r.json.get('resourceType') == 'OperationOutcome' and issues and
                  issues[0].get('code') == 'transient', 'an OperationOutcome, transient: %r' % r.json)
        time.sleep(1.0)
    finally:
        cluster('up', pgdir)


test_expect_success('PostgreSQL down: reads and writes answer 503 with a transient OperationOutcome',
                    t_down)


def t_back():
    deadline = time.monotonic() + 15
    cl = srv.client()
    while True:
        r = cl.post('/fhir/Patient', json={'resourceType': 'Patient'})
        if r.status == 201:
            break
        check(time.monotonic() < deadline, 'no write succeeded within 15 s of the restart: %d'
              % r.status)
        time.sleep(0.2)
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join()
    bad = [(s, j) for s, j in answers if s not in (200, 201, 503)]
    check(not bad, 'answers other than 200/201/503: %r' % bad[:3])
    for s, j in answers:
        if s == 503:
            check(j and j.get('resourceType') == 'OperationOutcome', '503 without an outcome')
    n503 = sum(1 for s, _ in answers if s == 503)
    note('%d answers, %d of them 503, %d writes acknowledged' % (len(answers), n503, len(acked)))
    check(n503 > 0, 'the gap was seen by the load')


test_expect_success('after the restart the server reconnects by itself; only 2xx or 503 answered',
                    t_back)


def t_nothing_lost():
    cl = srv.client()
    missing = [p for p in acked if cl.get('/fhir/Patient/%s' % p).status != 200]
    eq(missing, [], 'acknowledged writes present after the restart')
    rc, out, _ = srv.ehr('audit', 'verify', check_rc=False)
    eq(rc, 0, 'audit chain intact: %s' % out)


test_expect_success('every acknowledged write is present; the audit chain verifies', t_nothing_lost)

try:
    test_done()
finally:
    subprocess.run([PG_CLUSTER, 'stop', pgdir], capture_output=True, timeout=120)
