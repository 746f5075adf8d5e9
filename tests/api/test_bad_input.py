#!/usr/bin/env python3
"""
test_bad_input.py - the bad-input matrix. Each bad request must get the right
status (FHIR R4 http.html: 400 when the resource cannot be parsed or fails basic
validation, 404 for an unknown type, 413 over the body limit, 415 for a content
type the server does not take, 422 only for business rules) and an
OperationOutcome whose issue expression names the field (`Patient.birthDate`),
and must leave the store exactly as it was: the Patient type history and search
counts, the system history and the target resource are checked after every case.
"""
import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403
from harness import Server, ServerError, dumps  # noqa: E402

DEFAULT_LIMIT = 16 * 1024 * 1024   # documented default body limit (16 MiB)
SMALL_LIMIT = 65536                # for the server started with --max-body

srv = start_server(name='bad-input')
c = srv.client()
SYS = 'http://example.org/ehr-test/' + unique('bad')


def patient(case, **extra):
    p = {'resourceType': 'Patient',
         'identifier': [{'system': SYS, 'value': case}],
         'name': [{'family': 'Bad', 'given': ['Input']}],
         'gender': 'male', 'birthDate': '1980-01-01'}
    p.update(extra)
    return p


def observation(case, **extra):
    o = {'resourceType': 'Observation', 'status': 'final',
         'identifier': [{'system': SYS, 'value': case}],
         'code': {'coding': [{'system': 'http://loinc.org', 'code': '8867-4'}]},
         'valueQuantity': {'value': 72, 'unit': '/min', 'system': 'http://unitsofmeasure.org',
                           'code': '/min'}}
    o.update(extra)
    return o


def count(path):
    """Entries of a history or search, following next links."""
    pages = follow_pages(c, path)
    n = sum(len(bundle_entries(p)) for p in pages)
    total = pages[0].get('total')
    if total is not None:
        eq(total, n, 'Bundle.total of %s vs its entries' % path)
    return n


def snapshot():
    return {
        'Patient type history': count('/fhir/Patient/_history'),
        'Patient search': count('/fhir/Patient'),
        'Observation search': count('/fhir/Observation'),
        'system history': count('/fhir/_history'),
    }


# seed data: a few resources, and the target of the bad updates
for i in range(3):
    c.post('/fhir/Patient', json=patient('seed-%d' % i))
c.post('/fhir/Observation', json=observation('seed-obs'))
TARGET_ID = 'bad-input-target'
TARGET = patient('target', id=TARGET_ID)
_r = c.put('/fhir/Patient/' + TARGET_ID, json=TARGET)
if _r.status not in (200, 201):
    print('Bail out! cannot seed the target patient: %s' % _r.describe())
    sys.exit(1)
BASE = snapshot()


def store_unchanged(what):
    now = snapshot()
    for k in BASE:
        eq(now[k], BASE[k], '%s after %s' % (k, what))
    r = c.get('/fhir/Patient/' + TARGET_ID)
    expect_status(r, 200)
    res = r.json
    eq(res['meta']['versionId'], '1', 'target patient version after %s' % what)
    d = json_diff({k: v for k, v in TARGET.items()}, {k: v for k, v in res.items() if k != 'meta'})
    check(d is None, 'target patient changed after %s: %s' % (what, d))


def bad(method, path, body, statuses, expression=None, content_type='application/fhir+json',
        extra_expressions=()):
    def run():
        if isinstance(body, (dict, list)):
            data = dumps(body).encode('utf-8')
        elif isinstance(body, str):
            data = body.encode('utf-8')
        else:
            data = body
        r = c.request(method, path, body=data, content_type=content_type)
        expect_outcome(r, statuses, expression)
        for x in extra_expressions:
            expect_outcome(r, statuses, x)
        store_unchanged('%s %s' % (method, path))
    return run


T = '/fhir/Patient/' + TARGET_ID
long_id = 'a' * 65

MATRIX = [
    # (name, method, path, body, statuses, expression)
    ('invalid JSON (truncated) on create answers 400', 'POST', '/fhir/Patient',
     '{"resourceType": "Patient", "name": [', 400, None),
    ('invalid JSON (trailing comma) on update answers 400', 'PUT', T,
     '{"resourceType": "Patient", "id": "%s",}' % TARGET_ID, 400, None),
    ('a JSON array instead of a resource answers 400', 'POST', '/fhir/Patient', [patient('array')], 400, None),
    ('an empty body answers 400', 'POST', '/fhir/Patient', b'', 400, None),
    ('invalid UTF-8 in a string answers 400', 'POST', '/fhir/Patient',
     b'{"resourceType": "Patient", "name": [{"family": "\xff\xfe"}]}', 400, None),
    ('wrong resourceType (Observation posted to /Patient) answers 400', 'POST', '/fhir/Patient',
     observation('wrongtype'), 400, None),
    ('wrong resourceType on update answers 400', 'PUT', T,
     observation('wrongtype-put', id=TARGET_ID), 400, None),
    ('missing resourceType answers 400', 'POST', '/fhir/Patient',
     {k: v for k, v in patient('nort').items() if k != 'resourceType'}, 400, None),
    ('unknown element answers 400 naming Patient.favouriteColour', 'POST', '/fhir/Patient',
     patient('unknown', favouriteColour='blue'), 400, r'Patient\.favouriteColour'),
    ('unknown nested element answers 400 naming Patient.name[0].nickname', 'POST', '/fhir/Patient',
     patient('nested', name=[{'family': 'X', 'nickname': 'Y'}]), 400, r'Patient\.name(\[0\])?\.nickname'),
    ('bad date 2024-02-30 answers 400 naming Patient.birthDate', 'POST', '/fhir/Patient',
     patient('baddate', birthDate='2024-02-30'), 400, r'Patient\.birthDate'),
    ('bad date format 02/03/2024 answers 400 naming Patient.birthDate', 'POST', '/fhir/Patient',
     patient('baddate2', birthDate='02/03/2024'), 400, r'Patient\.birthDate'),
    ('bad dateTime 2023-02-29T10:00:00Z answers 400 naming Patient.deceasedDateTime', 'POST', '/fhir/Patient',
     patient('baddt', deceasedDateTime='2023-02-29T10:00:00Z'), 400,
     r'Patient\.deceased(DateTime|\.ofType\(dateTime\))?'),
    ('id over 64 characters answers 400 naming Patient.id', 'PUT', '/fhir/Patient/' + long_id,
     patient('longid', id=long_id), 400, r'Patient\.id'),
    ('id with an illegal character answers 400', 'PUT', '/fhir/Patient/bad_id!',
     patient('badchar', id='bad_id!'), 400, None),
    ('code outside the required binding (gender robot) answers 400/422 naming Patient.gender', 'POST', '/fhir/Patient',
     patient('robot', gender='robot'), (400, 422), r'Patient\.gender'),
    ('code outside the required binding (Observation.status done) answers 400/422', 'POST', '/fhir/Observation',
     observation('done', status='done'), (400, 422), r'Observation\.status'),
    ('wrong JSON type (birthDate as a number) answers 400 naming Patient.birthDate', 'POST', '/fhir/Patient',
     patient('numdate', birthDate=19800101), 400, r'Patient\.birthDate'),
    ('wrong JSON type (active as a string) answers 400 naming Patient.active', 'POST', '/fhir/Patient',
     patient('strbool', active='true'), 400, r'Patient\.active'),
    ('wrong JSON type (name as an object, not an array) answers 400 naming Patient.name', 'POST', '/fhir/Patient',
     patient('objname', name={'family': 'X'}), 400, r'Patient\.name'),
    ('wrong JSON type (given as a string) answers 400 naming Patient.name[0].given', 'POST', '/fhir/Patient',
     patient('strgiven', name=[{'family': 'X', 'given': 'Y'}]), 400, r'Patient\.name(\[0\])?\.given'),
    ('null for a value answers 400 naming Patient.gender', 'POST', '/fhir/Patient',
     patient('null', gender=None), 400, r'Patient\.gender'),
    ('wrong type in a choice element (valueQuantity as a string) answers 400', 'POST', '/fhir/Observation',
     observation('choice', valueQuantity='72 /min'), 400,
     r'Observation\.value(Quantity|\.ofType\(Quantity\))?'),
    ('missing required element (Observation.status, 1..1) answers 400 naming Observation.status', 'POST',
     '/fhir/Observation', {k: v for k, v in observation('nostatus').items() if k != 'status'}, 400,
     r'Observation\.status'),
    # json.html: string property values can never be empty
    ('an empty string answers 400 naming Patient.name[0].family', 'POST', '/fhir/Patient',
     patient('emptystr', name=[{'family': ''}]), 400, r'Patient\.name(\[0\])?\.family'),
    # datatypes.html: integer is a 32-bit signed value
    ('an integer out of range (2^31) answers 400 naming Patient.multipleBirthInteger', 'POST', '/fhir/Patient',
     patient('bigint', multipleBirthInteger=2147483648), 400,
     r'Patient\.multipleBirth(Integer|\.ofType\(integer\))?'),
    ('a decimal where an integer is expected answers 400 naming Patient.multipleBirthInteger', 'POST',
     '/fhir/Patient', '{"resourceType":"Patient","multipleBirthInteger":1.5}', 400,
     r'Patient\.multipleBirth(Integer|\.ofType\(integer\))?'),
    ('a number as a string (valueQuantity.value "72") answers 400', 'POST', '/fhir/Observation',
     observation('strnum', valueQuantity={'value': '72', 'unit': '/min'}), 400,
     r'Observation\.value(Quantity|\.ofType\(Quantity\))\.value'),
    # Extension.url is 1..1
    ('an extension without url answers 400 naming Patient.extension[0].url', 'POST', '/fhir/Patient',
     patient('exturl', extension=[{'valueString': 'x'}]), 400, r'Patient\.extension(\[0\])?\.url'),
    ('a JSON body nested 100000 deep answers 400 (and the server lives)', 'POST', '/fhir/Patient',
     '{"resourceType":"Patient","extension":' + '[' * 100000 + ']' * 100000 + '}', 400, None),
    ('id in the body differs from the URL on update answers 400', 'PUT', T,
     patient('target', id='someone-else'), 400, None),
    ('no id in the body on update answers 400', 'PUT', T,
     {k: v for k, v in TARGET.items() if k != 'id'}, 400, None),
    ('unknown resource type on create answers 404', 'POST', '/fhir/Foo',
     {'resourceType': 'Foo', 'identifier': [{'system': SYS, 'value': 'foo'}]}, 404, None),
    ('unknown resource type on update answers 404', 'PUT', '/fhir/Foo/1',
     {'resourceType': 'Foo', 'id': '1'}, 404, None),
]

for name, method, path, body, statuses, expr in MATRIX:
    test_expect_success(name, bad(method, path, body, statuses, expr))


def t_bad_since():
    for path in ('/fhir/Patient/_history?_since=yesterday', '/fhir/_history?_since=2024-13-45T00:00:00Z',
                 '/fhir/Patient/%s/_history?_since=2024-02-30T00:00:00Z' % TARGET_ID):
        expect_outcome(c.get(path), 400)


test_expect_success('history with a malformed _since answers 400', t_bad_since)

test_expect_success('every issue is listed: bad birthDate and bad gender together name both fields',
                    bad('POST', '/fhir/Patient', patient('two', birthDate='2024-02-30', gender='robot'),
                        (400, 422), r'Patient\.birthDate', extra_expressions=[r'Patient\.gender']))

for ct in ('text/plain', 'application/x-www-form-urlencoded', 'text/csv'):
    test_expect_success('Content-Type %s on create answers 415' % ct,
                        bad('POST', '/fhir/Patient', patient('ct'), 415, None, content_type=ct))
test_expect_success('Content-Type text/plain on update answers 415',
                    bad('PUT', T, TARGET, 415, None, content_type='text/plain'))


# JSON Patch that would make the resource invalid, or is itself invalid
def patch_case(ops, statuses, expression=None, raw=None):
    def run():
        if raw is not None:
            r = c.request('PATCH', T, body=raw, content_type='application/json-patch+json')
        else:
            r = c.patch(T, ops)
        expect_outcome(r, statuses, expression)
        store_unchanged('PATCH %s' % T)
    return run


test_expect_success('JSON Patch to an invalid resource (gender robot) answers 400/422 and changes nothing',
                    patch_case([{'op': 'replace', 'path': '/gender', 'value': 'robot'}], (400, 422),
                               r'Patient\.gender'))
test_expect_success('JSON Patch adding an unknown element answers 400/422 and changes nothing',
                    patch_case([{'op': 'add', 'path': '/favouriteColour', 'value': 'blue'}], (400, 422),
                               r'Patient\.favouriteColour'))
test_expect_success('JSON Patch changing the id answers 400/422 and changes nothing',
                    patch_case([{'op': 'replace', 'path': '/id', 'value': 'other-id'}], (400, 422)))
test_expect_success('a JSON Patch document that is not an array answers 400',
                    patch_case(None, 400, raw=b'{"op": "replace", "path": "/gender", "value": "female"}'))
test_expect_success('a JSON Patch with an unknown op answers 400',
                    patch_case([{'op': 'frobnicate', 'path': '/gender', 'value': 'female'}], 400))
test_expect_success('a JSON Patch removing a missing element answers 400/409/422 and changes nothing',
                    patch_case([{'op': 'remove', 'path': '/photo'}], (400, 409, 422)))
test_expect_success('a JSON Patch that is not JSON answers 400',
                    patch_case(None, 400, raw=b'[{"op": "replace", '))


# --------------------------------------------------------------------------
# body size limit

def raw_request(port, method, path, headers, body_chunks, timeout=60):
    """
    Send a request on a raw socket, body chunk by chunk, and stop sending as
    soon as the server answers (a server may answer 413 and close without
    reading the rest). Returns (status, headers dict, body bytes).
    """
    s = socket.create_connection(('127.0.0.1', port), timeout=timeout)
    try:
        head = '%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n' % (method, path, port)
        head += ''.join('%s: %s\r\n' % kv for kv in headers.items()) + '\r\n'
        s.sendall(head.encode('latin-1'))
        for chunk in body_chunks:
            r, _, _ = select.select([s], [], [], 0)
            if r:
                break          # the server has answered (or closed) already
            try:
                s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        data = b''
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got = s.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                break
            if not got:
                break
            data += got
            hdr_end = data.find(b'\r\n\r\n')
            if hdr_end >= 0:
                hdrs = _parse_headers(data[:hdr_end])
                n = int(hdrs.get('content-length', '-1'))
                if n >= 0 and len(data) >= hdr_end + 4 + n:
                    break
        check(data.startswith(b'HTTP/1.'), 'no HTTP response to the large body (got %r)' % data[:200])
        hdr_end = data.find(b'\r\n\r\n')
        status = int(data.split(b' ', 2)[1])
        hdrs = _parse_headers(data[:hdr_end])
        return status, hdrs, data[hdr_end + 4:]
    finally:
        s.close()


def _parse_headers(block):
    out = {}
    for line in block.decode('latin-1').split('\r\n')[1:]:
        if ':' in line:
            k, v = line.split(':', 1)
            out[k.strip().lower()] = v.strip()
    return out


def sized_patient(case, size):
    """A valid Patient JSON of exactly `size` bytes (padded in the narrative)."""
    base = patient(case, text={'status': 'generated',
                               'div': '<div xmlns="http://www.w3.org/1999/xhtml">PAD</div>'})
    empty = dumps(base).encode('utf-8')
    pad = size - (len(empty) - 3)
    check(pad >= 0, 'size too small')
    return empty.replace(b'PAD', b'x' * pad)


def chunks(data, n=65536):
    for i in range(0, len(data), n):
        yield data[i:i + n]


def expect_413(status, hdrs, body):
    check(status == 413, 'expected status 413, got %d (%r)' % (status, body[:300]))
    ct = hdrs.get('content-type', '').split(';')[0].strip()
    check(ct in ('application/fhir+json', 'application/json'), '413 Content-Type %r' % ct)
    oo = loads_exact(body)
    eq(oo.get('resourceType'), 'OperationOutcome', '413 body resourceType')
    check(oo.get('issue'), '413 OperationOutcome without issue')


def t_huge_default():
    data = sized_patient('huge', DEFAULT_LIMIT + 1024)
    status, hdrs, body = raw_request(srv.port, 'POST', '/fhir/Patient',
                                     {'Content-Type': 'application/fhir+json',
                                      'Content-Length': str(len(data))}, chunks(data))
    expect_413(status, hdrs, body)
    store_unchanged('a body over the 16 MiB default limit')


test_expect_success('a body over the default limit (16 MiB) answers 413 with an OperationOutcome', t_huge_default)

small = None
try:
    small = Server(['--max-body', str(SMALL_LIMIT)], name='max-body').start()
except ServerError as e:
    small_err = str(e)


def t_max_body():
    if small is None:
        raise TestFailure('ehr serve --max-body %d would not start: %s' % (SMALL_LIMIT, small_err))
    sc = small.client()
    data = sized_patient('over', SMALL_LIMIT + 1)
    r = sc.post('/fhir/Patient', body=data, content_type='application/fhir+json')
    expect_outcome(r, 413)
    data = sized_patient('under', SMALL_LIMIT - 16)
    r = sc.post('/fhir/Patient', body=data, content_type='application/fhir+json')
    expect_status(r, 201)
    sc.close()
    sc = small.client()
    n = len(follow_pages(sc, '/fhir/Patient/_history')[0].get('entry', []))
    eq(n, 1, 'patients written on the --max-body server')


def t_max_body_chunked():
    if small is None:
        raise TestFailure('ehr serve --max-body %d would not start: %s' % (SMALL_LIMIT, small_err))
    data = sized_patient('chunked', SMALL_LIMIT * 4)

    def chunked():
        for piece in chunks(data, 8192):
            yield b'%x\r\n' % len(piece) + piece + b'\r\n'
        yield b'0\r\n\r\n'
    status, hdrs, body = raw_request(small.port, 'POST', '/fhir/Patient',
                                     {'Content-Type': 'application/fhir+json',
                                      'Transfer-Encoding': 'chunked'}, chunked())
    expect_413(status, hdrs, body)
    sc = small.client()
    r = sc.get('/fhir/Patient?identifier=%s' % quote(SYS + '|chunked'))
    expect_status(r, 200)
    eq(len(bundle_entries(r.json)), 0, 'patients stored from the chunked body')


test_expect_success('--max-body %d: one byte over answers 413, just under is accepted' % SMALL_LIMIT, t_max_body)
test_expect_success('--max-body: a chunked body (no Content-Length) over the limit answers 413', t_max_body_chunked)


def t_disconnect():
    # clients that go away mid-body must not leave a write behind or wedge a worker
    data = dumps(patient('halfsent')).encode('utf-8')
    for _ in range(20):
        s = socket.create_connection(('127.0.0.1', srv.port), timeout=10)
        s.sendall(b'POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\n'
                  b'Content-Length: %d\r\n\r\n' % len(data) + data[:len(data) // 2])
        s.close()
    store_unchanged('20 clients disconnecting mid-body')


test_expect_success('clients disconnecting mid-body leave nothing stored and the server answering', t_disconnect)


def t_nothing_stored():
    store_unchanged('the whole matrix')
    r = c.get('/fhir/Patient?identifier=%s' % quote(SYS + '|'))
    expect_status(r, 200)
    vals = sorted(i.get('value') for e in bundle_entries(r.json)
                  for i in e['resource'].get('identifier', []))
    eq(vals, ['seed-0', 'seed-1', 'seed-2', 'target'], 'identifiers of the stored patients')
    r = c.get('/fhir/metadata')
    expect_status(r, 200)


test_expect_success('after the whole matrix only the seed data is stored and the server still answers', t_nothing_stored)

test_done()
