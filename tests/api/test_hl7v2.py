#!/usr/bin/env python3
"""
test_hl7v2.py - HL7 v2 in: POST /hl7v2 and MLLP on real loopback sockets.

Expected values come from the v2 message text itself, split here with
Python's own code (HL7 v2.5.1 chapter 2: segments end in CR or LF, fields
by MSH-1, components by the first character of MSH-2), and from the HL7
v2-to-FHIR IG's concept map for administrative sex; never from the
server's output. Cases: ACK codes (AA; AR for a malformed message and an
unknown type; AE for a missing required field, with an ERR naming
segment, field and reason, and no partial write), duplicate control ids
applied once, authorization of POST /hl7v2, and a SIGKILL during a stream
after which every acknowledged message is stored and applied exactly once.
"""
import csv
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

SAMPLES = os.path.join(DATA_DIR, 'hl7v2', 'converter-samples', 'messages', 'Hl7v2')
SEXMAP = os.path.join(DATA_DIR, 'hl7v2', 'v2-to-fhir-mappings', 'mappings', 'codesystems',
                      'HL7 Concept Map_ AdministrativeSex - Sheet1.csv')
VT, FS, CR = b'\x0b', b'\x1c', b'\x0d'
ER7 = 'x-application/hl7-v2+er7'


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


MLLP_PORT = free_port()
srv = start_server(extra_args=['--mllp-port', str(MLLP_PORT)], name='hl7v2')
c = srv.client()


# -- an independent reading of v2 text --

def segments(text):
    text = text.lstrip('\ufeff')
    return [s for s in text.replace('\r\n', '\r').replace('\n', '\r').split('\r') if s]


def fields(seg, fs='|'):
    f = seg.split(fs)
    if f[0] == 'MSH':
        return ['MSH', fs] + f[1:]
    return f


def field(text, name, n, comp=1, rep=1):
    for s in segments(text):
        if s.startswith(name):
            f = fields(s)
            if n >= len(f):
                return ''
            r = f[n].split('~')
            if rep > len(r):
                return ''
            cs = r[rep - 1].split('^')
            return cs[comp - 1] if comp <= len(cs) else ''
    return ''


def msg(control, body, typ='ADT^A01', sender='TESTAPP', ver='2.5.1', extra=''):
    return ('MSH|^~\\&|%s|TESTFAC|EHR|EHR|20240301101500||%s|%s|P|%s%s\r' %
            (sender, typ, control, ver, extra)) + body


def mllp_send(data, port=MLLP_PORT, sock=None, timeout=60):
    own = sock is None
    if own:
        sock = socket.create_connection(('127.0.0.1', port), timeout=timeout)
    sock.sendall(VT + data.encode('utf-8') + FS + CR)
    buf = b''
    while FS not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise TestFailure('connection closed before an ACK')
        buf += chunk
    if own:
        sock.close()
    start = buf.index(VT) + 1
    return buf[start:buf.index(FS)].decode('utf-8')


def msa(ack):
    return field(ack, 'MSA', 1), field(ack, 'MSA', 2)


def err_loc(ack):
    return (field(ack, 'ERR', 2, 1), field(ack, 'ERR', 2, 2), field(ack, 'ERR', 2, 3),
            field(ack, 'ERR', 3, 1))


def search(path):
    r = c.get(path)
    expect_status(r, 200)
    return r.json


def patients_with(system, value):
    return bundle_entries(search('/fhir/Patient?identifier=%s|%s' % (quote(system), quote(value))))


PID = ('PID|1||%s^^^HOSPA^MR||%s^%s^Q||19700315|F|||1 Main St^^Springfield^IL^62701||'
       '(217)555-0100\r')
SYS_A = 'urn:ehr:hl7v2:id:HOSPA'


def t_http_adt():
    mrn = unique('mrn')
    pv1 = [''] * 46
    pv1[0:4] = ['PV1', '1', 'I', 'W1^101^A']
    pv1[7] = '1234^Smith^John'
    pv1[19] = 'V%s^^^HOSPA^VN' % mrn
    pv1[44] = '20240301100000'
    m = msg(unique('c'), 'EVN|A01|20240301101500\r' + PID % (mrn, 'Doe', 'Jane') +
            '|'.join(pv1) + '\r')
    r = c.post('/hl7v2', body=m, content_type=ER7)
    expect_status(r, 200)
    eq(msa(r.content().decode())[0], 'AA', 'MSA-1')
    pats = patients_with(SYS_A, mrn)
    eq(len(pats), 1, 'patients with the MRN')
    p = pats[0]['resource']
    # the IG's AdministrativeSex map, read here from its CSV
    sexes = {}
    if os.path.exists(SEXMAP):
        for row in list(csv.reader(open(SEXMAP)))[2:]:
            if row and row[0]:
                sexes[row[0]] = row[6]
    eq(p.get('gender'), sexes.get(field(m, 'PID', 8), 'female'), 'gender')
    eq(p['name'][0]['family'], field(m, 'PID', 5, 1), 'family name')
    eq(p['birthDate'], '1970-03-15', 'birthDate from PID-7 19700315')
    encs = bundle_entries(search('/fhir/Encounter?identifier=%s|V%s' % (quote(SYS_A), mrn)))
    eq(len(encs), 1, 'encounters')
    e = encs[0]['resource']
    eq(e['status'], 'in-progress', 'A01 status (IG Event[EncounterStatus])')
    eq(e['class']['code'], 'IMP', 'PV1-2 I (IG PatientClass[EncounterClass])')
    eq(e['period']['start'][:16], '2024-03-01T10:00', 'PV1-44 admit time')
    eq(e['subject']['reference'], 'Patient/' + p['id'], 'subject')


def t_http_auth():
    m = msg(unique('c'), PID % (unique('mrn'), 'X', 'Y'))
    r = srv.client(token=None).post('/hl7v2', body=m, content_type=ER7)
    expect_status(r, 401)
    r = c.post('/hl7v2', body=m, content_type='application/json')
    expect_status(r, 415)
    r = c.get('/hl7v2')
    expect_status(r, 405)


def t_mllp_samples():
    if not os.path.isdir(SAMPLES):
        raise Skip('../shared/data/hl7v2 is absent')
    counts = {}
    for name in sorted(os.listdir(SAMPLES)):
        text = open(os.path.join(SAMPLES, name), encoding='utf-8-sig', errors='replace').read()
        typ = field(text, 'MSH', 9, 1) + '^' + field(text, 'MSH', 9, 2)
        if typ not in ('ADT^A01', 'ADT^A04', 'ADT^A08', 'ORU^R01', 'VXU^V04', 'SIU^S12',
                       'SIU^S14', 'SIU^S15'):
            continue
        if field(text, 'MSH', 15) == 'NE' and field(text, 'MSH', 16) in ('NE', ''):
            continue  # asks for no ACK
        text = '\r'.join(segments(text)) + '\r'
        ack = mllp_send(text)
        code, ctl = msa(ack)
        if code not in ('AA', 'CA'):
            raise TestFailure('%s: %s: %s' % (name, code, ack.replace('\r', ' | ')))
        eq(ctl, field(text, 'MSH', 10), name + ': MSA-2 names the control id')
        counts[typ] = counts.get(typ, 0) + 1
    note('accepted over MLLP: ' + ', '.join('%s %d' % kv for kv in sorted(counts.items())))
    check(counts.get('ORU^R01', 0) >= 3 and counts.get('ADT^A01', 0) >= 3, 'samples used')


def t_oru_values():
    mrn = unique('mrn')
    ctl = unique('oru')
    obx = [
        'OBX|1|NM|2345-7^Glucose^LN||182|mg/dL^mg/dL^UCUM|70-105|H|||F|||20240301083000',
        'OBX|2|ST|5778-6^Color^LN||Yellow||||||F',
        'OBX|3|NM|2160-0^Creatinine^LN||0.9|mg/dL|0.6-1.2|N|||F',
    ]
    m = msg(ctl, PID % (mrn, 'Lab', 'Pat') +
            'OBR|1|P%s|F%s^LAB|24331-1^Lipid panel^LN|||20240301080000|||||||||||||||20240301090000|||F\r'
            % (ctl, ctl) + '\r'.join(obx) + '\r', typ='ORU^R01')
    ack = mllp_send(m)
    eq(msa(ack)[0], 'AA', 'MSA-1')
    for i, line in enumerate(obx, 1):
        f = line.split('|')
        ident = 'TESTAPP^TESTFAC/%s/OBX%d' % (ctl, i + 3)  # MSH, PID, OBR come first
        obs = bundle_entries(search('/fhir/Observation?identifier=urn:ehr:hl7v2:source|' +
                                    quote(ident)))
        eq(len(obs), 1, 'observation %d' % i)
        o = obs[0]['resource']
        eq(o['code']['coding'][0]['code'], f[3].split('^')[0], 'OBX-3 code')
        eq(o['code']['coding'][0]['system'], 'http://loinc.org', 'LN is LOINC')
        eq(o['status'], 'final', 'OBX-11 F')
        if f[2] == 'NM':
            eq(str(o['valueQuantity']['value']), f[5], 'OBX-5 value')
            eq(o['valueQuantity']['unit'], f[6].split('^')[-2] if '^' in f[6] else f[6],
               'OBX-6 unit')
            lo, hi = f[7].split('-')
            eq(str(o['referenceRange'][0]['low']['value']), lo, 'OBX-7 low')
            eq(str(o['referenceRange'][0]['high']['value']), hi, 'OBX-7 high')
            eq(o['interpretation'][0]['coding'][0]['code'], f[8], 'OBX-8 flag')
        else:
            eq(o['valueString'], f[5], 'OBX-5 string')
    reps = bundle_entries(search('/fhir/DiagnosticReport?identifier=' +
                                 quote('urn:ehr:hl7v2:id:LAB') + '|F' + ctl))
    eq(len(reps), 1, 'diagnostic report by OBR-3')
    eq(len(reps[0]['resource']['result']), 3, 'results')


def t_errors():
    # malformed: no MSH
    ack = mllp_send('PID|1||x\r')
    eq(msa(ack)[0], 'AR', 'malformed: MSA-1')
    check(field(ack, 'ERR', 3, 1) == '100', 'malformed: ERR-3 100, got ' + ack)
    # unknown message type
    ack = mllp_send(msg(unique('c'), PID % (unique('m'), 'A', 'B'), typ='ZZZ^Z01'))
    eq(msa(ack)[0], 'AR', 'unknown type: MSA-1')
    eq(err_loc(ack), ('MSH', '1', '9', '200'), 'unknown type: ERR')
    # missing required field: PID-3 empty; the NK1 and PV1 must not be written
    name = unique('Nobody')
    m = msg(unique('c'), 'EVN|A01|20240301\rPID|1||||%s^Ann||19800101|F\r'
            'NK1|1|%s^Kin|SPO\rPV1|1|O\r' % (name, name))
    ack = mllp_send(m)
    eq(msa(ack)[0], 'AE', 'missing PID-3: MSA-1')
    eq(err_loc(ack), ('PID', '3', '3', '101'), 'missing PID-3: ERR-2 and ERR-3')
    check('PID-3' in field(ack, 'ERR', 8), 'ERR-8 names PID-3')
    # a bad value: OBX-2 NM with text
    m = msg(unique('c'), PID % (unique('m'), 'Bad', 'Value') +
            'OBR|1||X1|1^T^LN\rOBX|1|NM|2345-7^Glucose^LN||high|mg/dL||||F\r', typ='ORU^R01')
    before = search('/fhir/Patient?_summary=count')['total']
    ack = mllp_send(m)
    eq(msa(ack)[0], 'AE', 'bad NM: MSA-1')
    eq(err_loc(ack), ('OBX', '4', '5', '102'), 'bad NM: ERR')
    eq(search('/fhir/Patient?_summary=count')['total'], before, 'no partial write (patient)')


def t_duplicates():
    mrn = unique('dup')
    ctl = unique('ctl')
    m = msg(ctl, 'EVN|A08|20240301\r' + PID % (mrn, 'Twice', 'Sent'), typ='ADT^A08')
    a1 = mllp_send(m)
    a2 = mllp_send(m)
    eq(msa(a1)[0], 'AA', 'first')
    eq(msa(a2)[0], 'AA', 'repeat answered AA')
    pats = patients_with(SYS_A, mrn)
    eq(len(pats), 1, 'one patient')
    hist = c.get('/fhir/Patient/%s/_history' % pats[0]['resource']['id']).json
    eq(hist.get('total', len(bundle_entries(hist))), 1, 'applied once: one version')
    # the same control id from another sender is another message
    m2 = msg(ctl, 'EVN|A08|20240301\r' + PID % (mrn, 'Twice', 'Renamed'), typ='ADT^A08',
             sender='OTHERAPP')
    eq(msa(mllp_send(m2))[0], 'AA', 'other sender')
    hist = c.get('/fhir/Patient/%s/_history' % pats[0]['resource']['id']).json
    eq(hist.get('total', len(bundle_entries(hist))), 2, 'other sender applied')
    p = c.get('/fhir/Patient/%s' % pats[0]['resource']['id']).json
    eq(p['name'][0]['given'][0], 'Renamed', 'PID-5.2 of the second message')


def t_merge():
    old, new = unique('old'), unique('new')
    a = mllp_send(msg(unique('c'), 'EVN|A04|20240301\r' + PID % (old, 'Merge', 'Prior'),
                      typ='ADT^A04'))
    eq(msa(a)[0], 'AA', 'prior registered')
    # unknown prior record: AE 204 at MRG-1, and the survivor is not written either
    ghost = unique('ghost')
    a = mllp_send(msg(unique('c'), 'EVN|A40|20240301\r' + PID % (new, 'Merge', 'Survivor') +
                      'MRG|%s^^^HOSPA^MR\r' % ghost, typ='ADT^A40'))
    eq(msa(a)[0], 'AE', 'unknown prior: MSA-1')
    eq(err_loc(a), ('MRG', '4', '1', '204'), 'unknown prior: ERR')
    eq(len(patients_with(SYS_A, new)), 0, 'no partial write: survivor not created')
    a = mllp_send(msg(unique('c'), 'EVN|A40|20240301\r' + PID % (new, 'Merge', 'Survivor') +
                      'MRG|%s^^^HOSPA^MR\r' % old, typ='ADT^A40'))
    eq(msa(a)[0], 'AA', 'merge: MSA-1')
    prior = patients_with(SYS_A, old)[0]['resource']
    surv = patients_with(SYS_A, new)[0]['resource']
    eq(prior.get('active'), False, 'prior inactive')
    eq(prior['name'][0]['given'][0], 'Prior', 'prior keeps its content')
    eq(prior['link'], [{'other': {'reference': 'Patient/' + surv['id']}, 'type': 'replaced-by'}],
       'prior link')
    eq(surv['link'], [{'other': {'reference': 'Patient/' + prior['id']}, 'type': 'replaces'}],
       'survivor link')


def t_framing():
    # garbage outside frames, then two messages on one connection
    s = socket.create_connection(('127.0.0.1', MLLP_PORT), timeout=60)
    s.sendall(b'noise before the frame\r\n')
    a1 = mllp_send(msg(unique('c'), PID % (unique('m'), 'F', 'One')), sock=s)
    a2 = mllp_send(msg(unique('c'), PID % (unique('m'), 'F', 'Two')), sock=s)
    s.close()
    eq((msa(a1)[0], msa(a2)[0]), ('AA', 'AA'), 'both answered on one connection')


def t_enhanced():
    m = msg(unique('c'), PID % (unique('m'), 'En', 'Hanced'), extra='|||AL|AL')
    s = socket.create_connection(('127.0.0.1', MLLP_PORT), timeout=60)
    s.sendall(VT + m.encode() + FS + CR)
    buf = b''
    while buf.count(FS) < 2:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    frames = [f.strip(b'\x0b\r').decode() for f in buf.split(FS) if f.strip(b'\x0b\r')]
    eq([msa(f)[0] for f in frames], ['CA', 'AA'], 'accept ACK then application ACK')


def t_import():
    mrn = unique('imp')
    good = msg(unique('c'), 'EVN|A04|20240301\r' + PID % (mrn, 'Imported', 'Ok'), typ='ADT^A04')
    bad = msg(unique('c'), 'EVN|A04|20240301\rPID|1||||NoId^Bad||19800101|F\r', typ='ADT^A04')
    path = os.path.join(srv.tmpdir, 'feed.hl7')
    with open(path, 'w') as f:
        f.write(good.replace('\r', '\n') + bad.replace('\r', '\n'))
    bad_line = good.count('\r') + 1
    p = subprocess.run([EHR_BIN, 'import', *store_args(srv.db, srv.store), path],
                       capture_output=True, text=True, timeout=120)
    eq(p.returncode, 1, 'ehr import exit status with one refused message')
    check('feed.hl7:%d: HL7 AE: PID-3' % bad_line in p.stderr,
          'the refused message named by file and line: ' + p.stderr[-600:])
    eq(len(patients_with(SYS_A, mrn)), 1, 'the good message applied')


def t_crash():
    """Stream ORU messages on 3 connections, SIGKILL, restart: each acked one applied once."""
    acked = []
    lock = threading.Lock()
    stop = threading.Event()
    mrn = unique('crash')

    def sender(n):
        try:
            s = socket.create_connection(('127.0.0.1', MLLP_PORT), timeout=30)
            i = 0
            while not stop.is_set():
                ctl = 'K%s-%d-%d' % (mrn, n, i)
                m = msg(ctl, PID % (mrn, 'Crash', 'Test') +
                        'OBR|1||%s|1^T^LN\rOBX|1|NM|2345-7^Glucose^LN||%d|mg/dL||||F\r' % (ctl, i),
                        typ='ORU^R01')
                a = mllp_send(m, sock=s)
                if msa(a)[0] == 'AA':
                    with lock:
                        acked.append(ctl)
                i += 1
        except (OSError, TestFailure):
            pass

    ths = [threading.Thread(target=sender, args=(n,)) for n in range(3)]
    for t in ths:
        t.start()
    deadline = time.time() + 60
    while len(acked) < 40 and time.time() < deadline:
        time.sleep(0.05)
    srv.kill()
    stop.set()
    for t in ths:
        t.join()
    check(len(acked) >= 10, 'messages acknowledged before the kill: %d' % len(acked))
    srv.start()
    global c
    c = srv.client()
    for ctl in acked:
        ident = 'TESTAPP^TESTFAC/%s/OBX4' % ctl
        obs = bundle_entries(search('/fhir/Observation?identifier=urn:ehr:hl7v2:source|' +
                                    quote(ident)))
        eq(len(obs), 1, 'observation of acknowledged message %s' % ctl)
    note('%d acknowledged messages, each applied once after SIGKILL' % len(acked))
    srv.stop()
    out = subprocess.run([EHR_BIN, 'hl7', 'list', *store_args(srv.db, srv.store), '--limit', '100000'],
                         capture_output=True, text=True, timeout=120)
    eq(out.returncode, 0, 'ehr hl7 list')
    stored = {line.split()[6]: line.split()[2] for line in out.stdout.splitlines()[1:]
              if len(line.split()) > 6}
    for ctl in acked:
        eq(stored.get(ctl), 'applied', 'stored status of %s' % ctl)
    srv.start()


test_expect_success('POST /hl7v2 ADT^A01: AA, Patient and Encounter from PID/PV1', t_http_adt)
test_expect_success('POST /hl7v2 needs a token, an ER7 body, POST', t_http_auth)
test_expect_success('MLLP: every sample ADT/ORU/VXU/SIU answered AA', t_mllp_samples)
test_expect_success('MLLP: ORU^R01 values, units, ranges, flags', t_oru_values)
test_expect_success('MLLP: AR malformed, AR unknown type, AE missing field, no partial write',
                    t_errors)
test_expect_success('MLLP: a repeated control id is applied once', t_duplicates)
test_expect_success('MLLP: A40 merge links both records; an unknown prior writes nothing',
                    t_merge)
test_expect_success('MLLP: bytes outside frames skipped, connection kept', t_framing)
test_expect_success('MLLP: enhanced mode (MSH-15/16 AL): CA then AA', t_enhanced)
test_expect_success('ehr import of an HL7 v2 file: applied, refusals named by file and line',
                    t_import)
test_expect_success('SIGKILL during a stream: acknowledged = stored and applied once', t_crash)
test_done()
