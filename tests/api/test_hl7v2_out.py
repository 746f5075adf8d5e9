#!/usr/bin/env python3
"""
test_hl7v2_out.py - immunizations out to a registry (ehr serve --hl7-registry).

A fake registry on a loopback port speaks MLLP: it records each message
and answers with an ACK whose MSA-1 the test chooses. The registry starts
down: the VXU must wait in the queue (status queued, attempts counted) and
go out once it is up; its ACK is recorded (status sent, AA). A refusal (AE)
makes the message failed; `ehr hl7 resend` queues it again. The VXU's
fields are checked against the Immunization and Patient the test wrote
(CDC IG for Immunization Messaging: RXA-3 date, RXA-5 CVX, RXA-15 lot,
PID-3). An immunization that came in over HL7 v2 is not sent back out.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

VT, FS, CR = b'\x0b', b'\x1c', b'\x0d'


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


REG_PORT = free_port()
MLLP_PORT = free_port()
srv = start_server(extra_args=['--hl7-registry', '127.0.0.1:%d' % REG_PORT,
                               '--mllp-port', str(MLLP_PORT)], name='hl7out')
c = srv.client()


def field(text, name, n, comp=1):
    for s in text.replace('\n', '\r').split('\r'):
        if s.startswith(name + '|'):
            f = s.split('|')
            if name == 'MSH':
                f = ['MSH', '|'] + f[1:]
            if n >= len(f):
                return ''
            cs = f[n].split('~')[0].split('^')
            return cs[comp - 1] if comp <= len(cs) else ''
    return ''


class Registry:
    def __init__(self, port):
        self.port = port
        self.got = []
        self.answer = 'AA'
        self.queries = []
        self.sock = None
        self.th = None

    def start(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('127.0.0.1', self.port))
        self.sock.listen(8)
        self.th = threading.Thread(target=self.serve, daemon=True)
        self.th.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.conn, args=(conn,), daemon=True).start()

    def conn(self, conn):
        buf = b''
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
                while FS in buf:
                    frame, buf = buf.split(FS, 1)
                    buf = buf[1:] if buf.startswith(CR) else buf
                    text = frame[frame.index(VT) + 1:].decode('utf-8')
                    if field(text, 'MSH', 9, 1) == 'QBP':
                        self.queries.append(text)
                        conn.sendall(VT + self.rsp(text).encode() + FS + CR)
                        continue
                    self.got.append(text)
                    ack = ('MSH|^~\\&|REG|REG|EHR|EHR|20240101||ACK^V04^ACK|R%d|P|2.5.1\r'
                           'MSA|%s|%s\r' % (len(self.got), self.answer,
                                            field(text, 'MSH', 10)))
                    conn.sendall(VT + ack.encode() + FS + CR)
        except OSError:
            pass
        finally:
            conn.close()


    # the registry's history for the queried patient: two doses (CDC IG, Z32)
    HISTORY = [('20190605', '08', 'Hep B, adolescent or pediatric', 'LOTA1'),
               ('20200110', '20', 'DTaP', 'LOTB2')]

    def rsp(self, q):
        out = ('MSH|^~\\&|REG|REG|EHR|EHR|20240101||RSP^K11^RSP_K11|R%s|P|2.5.1|||NE|NE|||||'
               'Z32^CDCPHINVS\r' % field(q, 'MSH', 10))
        out += 'MSA|AA|%s\rQAK|%s|OK|Z34^Request Immunization History^CDCPHINVS\r' % (
            field(q, 'MSH', 10), field(q, 'QPD', 2))
        out += [s for s in q.split('\r') if s.startswith('QPD|')][0] + '\r'
        out += 'PID|1||%s^^^REGISTRY^SR||%s^%s||%s|F\r' % (
            field(q, 'QPD', 3), field(q, 'QPD', 4, 1), field(q, 'QPD', 4, 2), field(q, 'QPD', 6))
        for i, (d, cvx, name, lot) in enumerate(self.HISTORY, 1):
            out += 'ORC|RE||R-%d^REGISTRY\r' % i
            out += ('RXA|0|1|%s||%s^%s^CVX|999|||01^Historical^NIP001||||||%s|||||CP|A\r'
                    % (d, cvx, name, lot))
        return out


reg = Registry(REG_PORT)


def outbound():
    p = subprocess.run([EHR_BIN, 'hl7', 'list', *store_args(srv.db, srv.store), '--direction', 'out'],
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, 'ehr hl7 list: ' + p.stderr)
    rows = []
    for line in p.stdout.splitlines()[1:]:
        f = line.split()
        if len(f) >= 7:
            rows.append({'id': f[0], 'status': f[2], 'ack': f[3], 'control': f[6]})
    return rows


def wait_for(pred, what, timeout=40):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.3)
    raise TestFailure('timed out waiting for ' + what)


MRN = unique('imm')
state = {}


def make_immunization(lot):
    r = c.post('/fhir/Patient', json={'resourceType': 'Patient',
                                      'identifier': [{'system': 'urn:ehr:hl7v2:id:CLINIC',
                                                      'value': MRN}],
                                      'name': [{'family': 'Vaccine', 'given': ['Vera']}],
                                      'birthDate': '2019-04-05', 'gender': 'female'})
    expect_status(r, 201)
    pid = r.json['id']
    imm = {'resourceType': 'Immunization', 'status': 'completed',
           'vaccineCode': {'coding': [{'system': 'http://hl7.org/fhir/sid/cvx', 'code': '08',
                                       'display': 'Hep B, adolescent or pediatric'}]},
           'patient': {'reference': 'Patient/' + pid},
           'occurrenceDateTime': '2024-02-03T09:30:00Z', 'lotNumber': lot,
           'primarySource': True}
    r = c.post('/fhir/Immunization', json=imm)
    expect_status(r, 201)
    return imm


def t_queued_while_down():
    state['imm'] = make_immunization(unique('LOT'))
    rows = wait_for(lambda: [r for r in outbound() if r['status'] == 'queued'] or None,
                    'a queued VXU')
    eq(len(rows), 1, 'one queued message')
    state['id'] = rows[0]['id']
    time.sleep(2)  # a few attempts against the closed port
    p = subprocess.run([EHR_BIN, 'hl7', 'show', *store_args(srv.db, srv.store), state['id']],
                       capture_output=True, text=True, timeout=60)
    check('attempts:' in p.stdout, 'attempts are counted: ' + p.stdout[:300])


def t_sent_when_up():
    reg.start()
    wait_for(lambda: reg.got, 'the registry to receive the VXU')
    m = reg.got[0]
    imm = state['imm']
    eq(field(m, 'MSH', 9, 1) + '^' + field(m, 'MSH', 9, 2), 'VXU^V04', 'MSH-9')
    eq(field(m, 'MSH', 12), '2.5.1', 'MSH-12')
    eq(field(m, 'PID', 3, 1), MRN, 'PID-3 the patient identifier')
    eq(field(m, 'PID', 5, 1), 'Vaccine', 'PID-5 family')
    eq(field(m, 'PID', 7), '20190405', 'PID-7 birth date')
    eq(field(m, 'RXA', 5, 1), imm['vaccineCode']['coding'][0]['code'], 'RXA-5 CVX code')
    eq(field(m, 'RXA', 5, 3), 'CVX', 'RXA-5.3 coding system')
    eq(field(m, 'RXA', 3)[:12], '202402030930', 'RXA-3 administered at')
    eq(field(m, 'RXA', 15), imm['lotNumber'], 'RXA-15 lot')
    eq(field(m, 'RXA', 20), 'CP', 'RXA-20 completion status')
    rows = wait_for(lambda: [r for r in outbound() if r['status'] == 'sent'] or None,
                    'the ACK to be recorded')
    eq((rows[0]['id'], rows[0]['ack']), (state['id'], 'AA'), 'sent, registry ACK AA recorded')


def t_refused_then_resent():
    reg.answer = 'AE'
    n = len(reg.got)
    make_immunization(unique('LOT'))
    wait_for(lambda: len(reg.got) > n, 'the second VXU')
    rows = wait_for(lambda: [r for r in outbound() if r['status'] == 'failed'] or None,
                    'the refusal to be recorded')
    eq(rows[0]['ack'], 'AE', 'refusal recorded')
    reg.answer = 'AA'
    p = subprocess.run([EHR_BIN, 'hl7', 'resend', *store_args(srv.db, srv.store), rows[0]['id']],
                       capture_output=True, text=True, timeout=60)
    eq(p.returncode, 0, 'ehr hl7 resend: ' + p.stderr)
    wait_for(lambda: [r for r in outbound() if r['id'] == rows[0]['id'] and r['status'] == 'sent']
             or None, 'the resent VXU to be accepted')
    eq(len(reg.got), n + 2, 'the registry got it twice')


def t_inbound_not_echoed():
    n = len(reg.got)
    before = len(outbound())
    m = ('MSH|^~\\&|REG|REG|EHR|EHR|20240301||VXU^V04^VXU_V04|%s|P|2.5.1\r'
         'PID|1||%s^^^REGISTRY^MR||Echo^Ed||20200101|M\r'
         'ORC|RE||%s^REG\r'
         'RXA|0|1|20240201||20^DTaP^CVX|0.5|mL^mL^UCUM||01^Historical^NIP001|||||||||||CP|A\r'
         % (unique('c'), unique('m'), unique('o')))
    s = socket.create_connection(('127.0.0.1', MLLP_PORT), timeout=60)
    s.sendall(VT + m.encode() + FS + CR)
    ack = b''
    while FS not in ack:
        ack += s.recv(65536)
    s.close()
    check(b'MSA|AA' in ack, 'inbound VXU accepted: %r' % ack)
    time.sleep(3)
    eq(len(outbound()), before, 'no outbound message for an inbound immunization')
    eq(len(reg.got), n, 'nothing sent to the registry')


def t_query():
    r = c.get('/fhir/Patient?identifier=urn:ehr:hl7v2:id:CLINIC|' + MRN)
    pid = bundle_entries(r.json)[0]['resource']['id']
    p = subprocess.run([EHR_BIN, 'hl7', 'query-registry', *store_args(srv.db, srv.store), '--patient', pid,
                        '--to', '127.0.0.1:%d' % REG_PORT], capture_output=True, text=True,
                       timeout=60)
    eq(p.returncode, 0, 'ehr hl7 query-registry: ' + p.stderr)
    q = reg.queries[-1]
    eq(field(q, 'MSH', 9, 1) + '^' + field(q, 'MSH', 9, 2), 'QBP^Q11', 'MSH-9')
    eq(field(q, 'QPD', 1, 1), 'Z34', 'QPD-1 query profile')
    eq(field(q, 'QPD', 3, 1), MRN, 'QPD-3 the patient identifier')
    eq(field(q, 'QPD', 4, 1), 'Vaccine', 'QPD-4 family name')
    eq(field(q, 'QPD', 6), '20190405', 'QPD-6 birth date')
    b = json.loads(p.stdout)
    ims = [e['resource'] for e in b['entry'] if e['resource']['resourceType'] == 'Immunization']
    eq(len(ims), len(Registry.HISTORY), 'one Immunization per RXA of the answer')
    for im, (d, cvx, _name, lot) in zip(ims, Registry.HISTORY):
        eq(im['vaccineCode']['coding'][0]['code'], cvx, 'RXA-5 CVX')
        eq(im['occurrenceDateTime'], '%s-%s-%s' % (d[:4], d[4:6], d[6:8]), 'RXA-3 date')
        eq(im['lotNumber'], lot, 'RXA-15 lot')
        eq(im['primarySource'], False, 'RXA-9 01 historical')


test_expect_success('registry down: the VXU waits in the queue, attempts counted',
                    t_queued_while_down)
test_expect_success('registry up: the VXU goes out, fields from the Immunization, ACK recorded',
                    t_sent_when_up)
test_expect_success('registry AE: failed; ehr hl7 resend queues it again and it goes out',
                    t_refused_then_resent)
test_expect_success('an immunization received over HL7 v2 is not sent back out',
                    t_inbound_not_echoed)
test_expect_success('QBP^Q11 history query: the RSP^K11 answer shown as Immunizations', t_query)
test_done()
