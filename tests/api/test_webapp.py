#!/usr/bin/env python3
"""
test_webapp.py - what the clinician app needs from the server, as any
client sees it: the static files at / (src/http/static.c), the built-in
first-party SMART client `ehr-clinician` (src/auth/oauth.c), and compartment
search GET /fhir/Patient/ID/TYPE (FHIR R4 3.1.0.9, search.html
"compartments"; src/rest/rest.c).

Expected values come from what the tests wrote and from the specifications
(RFC 7232 for ETags, RFC 6749/7636 for the code flow), never from earlier
answers of the server.
"""
import os
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403
from authlib import Browser, pkce, location_query  # noqa: E402

srv = start_server(name='webapp')
c = srv.client()
anon = Client(srv, token=None, accept=None)


# ---- static files ----

def index_served():
    r = anon.get('/')
    expect_status(r, 200)
    check(r.header('Content-Type').startswith('text/html'), 'text/html: %s' % r.header('Content-Type'))
    csp = r.header('Content-Security-Policy') or ''
    for part in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"):
        check(part in csp, 'CSP has %s: %s' % (part, csp))
    check("unsafe-inline" not in csp, 'no unsafe-inline')
    eq(r.header('X-Content-Type-Options'), 'nosniff', 'nosniff')
    eq(r.header('X-Frame-Options'), 'DENY', 'frame denial')
    check(b'<script type="module" src="/js/app.js">' in r.body, 'the app shell')
test_expect_success('GET / serves the app with a strict Content-Security-Policy', index_served)


def content_types():
    for path, ctype in (('/js/app.js', 'text/javascript'), ('/css/app.css', 'text/css'),
                        ('/favicon.svg', 'image/svg+xml'), ('/index.html', 'text/html')):
        r = anon.get(path)
        expect_status(r, 200)
        check(r.header('Content-Type').startswith(ctype), '%s is %s, not %s' % (path, r.header('Content-Type'), ctype))
        check(r.header('Content-Security-Policy') is None or ctype == 'text/html', 'CSP on HTML only')
test_expect_success('content types by extension', content_types)


def etags():
    r = anon.get('/js/app.js')
    etag = r.header('ETag')
    check(etag and etag.startswith('"') and etag.endswith('"'), 'a strong ETag: %s' % etag)
    eq(r.header('Cache-Control'), 'no-cache', 'revalidated every time')
    check(r.header('Last-Modified'), 'Last-Modified')
    r2 = anon.get('/js/app.js', headers={'If-None-Match': etag})
    expect_status(r2, 304)
    eq(len(r2.body), 0, '304 without a body')
    r3 = anon.get('/js/app.js', headers={'If-None-Match': '"other", W/' + etag})
    expect_status(r3, 304)   # RFC 7232 3.2: weak comparison, any of a list
    expect_status(anon.get('/js/app.js', headers={'If-None-Match': '"nope"'}), 200)
    r4 = anon.request('HEAD', '/js/app.js')
    expect_status(r4, 200)
    eq(len(r4.body), 0, 'HEAD without a body')
test_expect_success('ETag, If-None-Match (304), HEAD', etags)


def gzip_text():
    r = anon.get('/js/chart.js', headers={'Accept-Encoding': 'gzip'})
    expect_status(r, 200)
    eq(r.header('Content-Encoding'), 'gzip', 'gzip for a client that accepts it')
test_expect_success('text files are gzipped for clients that accept it', gzip_text)


def no_escape():
    for path in ('/../README.md', '/%2e%2e/README.md', '/js/%2e%2e/%2e%2e/README.md', '/js/..%2f..%2fREADME.md',
                 '/.git/config', '/js/.hidden', '/js//app.js', '/js\\app.js', '/nonexistent.js', '/js/'):
        r = anon.get(path)
        check(r.status in (400, 404), '%s answered %d' % (path, r.status))
        check(b'ehr -' not in r.body, 'no file content for %s' % path)
    r = anon.post('/index.html', body='x', content_type='text/plain')
    expect_status(r, 405)
    check('GET' in (r.header('Allow') or ''), 'Allow: GET, HEAD')
    # the APIs keep their own answers
    expect_status(anon.get('/fhir/Patient'), 401)
    r = anon.get('/auth/nothing-here', headers={'Accept': 'application/json'})
    expect_status(r, 404)
test_expect_success('no path leaves the web root; APIs are not shadowed', no_escape)


def web_root_option():
    d = tempfile.mkdtemp(prefix='ehr-web-')
    with open(os.path.join(d, 'index.html'), 'w') as f:
        f.write('<!doctype html><title>custom</title>')
    outside = tempfile.mkdtemp(prefix='ehr-outside-')
    with open(os.path.join(outside, 'secret.txt'), 'w') as f:
        f.write('secret')
    os.symlink(os.path.join(outside, 'secret.txt'), os.path.join(d, 'link.txt'))
    os.symlink(outside, os.path.join(d, 'dir'))
    s2 = start_server(['--web-root', d], name='webroot')
    a2 = Client(s2, token=None, accept=None)
    r = a2.get('/')
    expect_status(r, 200)
    check(b'custom' in r.body, 'served from --web-root')
    expect_status(a2.get('/link.txt'), 404)      # a symlink out of the root
    expect_status(a2.get('/dir/secret.txt'), 404)
    a2.close()
    s2.stop()
    s3 = start_server(['--no-web'], name='noweb')
    a3 = Client(s3, token=None, accept=None)
    expect_status(a3.get('/'), 404)
    a3.close()
    s3.stop()
    rc, out, err = srv.ehr('serve', '--web-root', '/nonexistent/web', '--port', '0', check_rc=False)
    check(rc != 0 and 'web-root' in err, 'a missing --web-root is refused: %d %s' % (rc, err))
test_expect_success('--web-root DIR (symlinks out of it refused), --no-web', web_root_option)


# ---- the first-party SMART client ----

def first_party_flow():
    srv.ehr('user', 'add', '--username', 'desk1', '--password', 'Front-Desk-Pass-9', '--role', 'front-desk')
    b = Browser(srv)
    r = b.login('desk1', 'Front-Desk-Pass-9')
    expect_status(r, 200)
    eq(r.json['status'], 'ok', 'front desk signs in without MFA')
    origin = 'http://127.0.0.1:%d' % srv.port
    verifier, challenge = pkce()
    q = {'response_type': 'code', 'client_id': 'ehr-clinician', 'redirect_uri': origin + '/',
         'scope': 'openid fhirUser online_access user/*.cruds', 'state': 'st-1',
         'aud': origin + '/fhir', 'code_challenge': challenge, 'code_challenge_method': 'S256'}
    r = b.get('/oauth/authorize?' + urllib.parse.urlencode(q))
    check(r.status in (302, 303), 'redirected at once, no consent page: %d' % r.status)
    loc, params = location_query(r)
    check(loc.startswith(origin + '/?'), 'back to this origin: %s' % loc)
    eq(params.get('state'), 'st-1', 'state')
    tok = anon.post('/oauth/token', body=urllib.parse.urlencode({
        'grant_type': 'authorization_code', 'code': params['code'], 'redirect_uri': origin + '/',
        'client_id': 'ehr-clinician', 'code_verifier': verifier}),
        content_type='application/x-www-form-urlencoded')
    expect_status(tok, 200)
    j = tok.json
    check(j.get('access_token') and j.get('id_token'), 'an access token and an id_token')
    check('online_access' in j['scope'] and 'user/' in j['scope'], 'scopes: %s' % j['scope'])
    # front desk: demographics yes, the clinical chart no (the role still decides)
    cc = Client(srv, token=j['access_token'])
    expect_status(cc.get('/fhir/Patient'), 200)
    expect_status(cc.get('/fhir/Observation'), 403)
    cc.close()
    # any other redirect_uri is refused with a page, never redirected to
    for bad in ('http://evil.example/', origin + '/x', origin, 'http://127.0.0.1:1/'):
        q2 = dict(q, redirect_uri=bad)
        r = b.get('/oauth/authorize?' + urllib.parse.urlencode(q2))
        expect_status(r, 400)
        check(r.header('Location') is None, 'no redirect for %s' % bad)
    # PKCE stays required for it
    q3 = dict(q)
    del q3['code_challenge']
    r = b.get('/oauth/authorize?' + urllib.parse.urlencode(q3))
    check(r.status in (302, 303), 'an error goes back to the app')
    _, p3 = location_query(r)
    eq(p3.get('error'), 'invalid_request', 'PKCE required')
    b.close()
test_expect_success('ehr-clinician: first-party code flow, own origin only, PKCE, no consent page', first_party_flow)


def registered_once():
    _, out, _ = srv.ehr('client', 'list')
    eq(out.count('ehr-clinician'), 1, 'listed once: %s' % out)
test_expect_success('the built-in client is registered once', registered_once)


# ---- compartment search ----

A = B = None


def compartment_setup():
    global A, B
    A = c.post('/fhir/Patient', json={'resourceType': 'Patient', 'name': [{'family': unique('Comp')}]}).json['id']
    B = c.post('/fhir/Patient', json={'resourceType': 'Patient', 'name': [{'family': unique('Comp')}]}).json['id']
    for pid, n in ((A, 5), (B, 2)):
        for i in range(n):
            r = c.post('/fhir/Observation', json={
                'resourceType': 'Observation', 'status': 'final',
                'code': {'coding': [{'system': 'http://loinc.org', 'code': '8867-4'}]},
                'subject': {'reference': 'Patient/' + pid}, 'valueQuantity': {'value': 60 + i}})
            expect_status(r, 201)
    expect_status(c.post('/fhir/Condition', json={
        'resourceType': 'Condition', 'subject': {'reference': 'Patient/' + A},
        'code': {'text': 'x'}}), 201)
test_expect_success('set up two patients with observations', compartment_setup)


def compartment_search():
    r = c.get('/fhir/Patient/%s/Observation' % A)
    expect_status(r, 200)
    b = r.json
    eq(b['type'], 'searchset', 'a searchset')
    eq(b['total'], 5, "A's observations only")
    for e in b['entry']:
        eq(e['resource']['subject']['reference'], 'Patient/' + A, 'in the compartment')
    eq(c.get('/fhir/Patient/%s/Observation' % B).json['total'], 2, "B's")
    eq(c.get('/fhir/Patient/%s/Condition' % B).json['total'], 0, 'B has no Condition')
    eq(c.get('/fhir/Patient/%s/Patient' % A).json['total'], 1, 'a Patient is in its own compartment')
    # other parameters still apply, and paging stays in the compartment
    r = c.get('/fhir/Patient/%s/Observation?_count=2' % A)
    b = r.json
    eq(len(b['entry']), 2, 'a page of 2')
    nxt = [l['url'] for l in b['link'] if l['relation'] == 'next'][0]
    check('/Patient/%s/Observation?' % A in nxt, 'next link in the compartment: %s' % nxt)
    eq(c.get('/fhir/Patient/%s/Observation?_summary=count' % A).json['total'], 5, '_summary=count')
    eq(c.get('/fhir/Patient/nobody-here/Observation').json['total'], 0, 'unknown patient: empty')
    r = c.get('/fhir/Patient/%s/Organization' % A)
    expect_status(r, 400)
    check(b'compartment' in r.body.lower(), 'says why: %r' % r.body[:200])
    expect_status(c.get('/fhir/Patient/%s/NotAType' % A), 404)
    expect_status(c.post('/fhir/Patient/%s/Observation' % A, json={'resourceType': 'Observation'}), 405)
    cs = c.get('/fhir/metadata').json
    check('http://hl7.org/fhir/CompartmentDefinition/patient' in cs['rest'][0].get('compartment', []),
          'the CapabilityStatement names the Patient compartment')
test_expect_success('GET /fhir/Patient/ID/TYPE searches within the compartment', compartment_search)


def compartment_access():
    # a physician whose panel is A sees A's compartment, and nothing of B's
    srv.ehr('user', 'add', '--username', 'doc1', '--password', 'Physician-Pass-77', '--role', 'physician',
            '--patient', 'Patient/' + A)
    _, out, _ = srv.ehr('token', '--user', 'doc1', '--scope', 'user/*.rs')
    d = Client(srv, token=out.strip().splitlines()[-1])
    eq(d.get('/fhir/Patient/%s/Observation' % A).json['total'], 5, 'own panel')
    r = d.get('/fhir/Patient/%s/Observation' % B)
    expect_status(r, 200)
    eq(r.json['total'], 0, "another patient's compartment shows nothing")
    d.close()
test_expect_success('compartment search keeps the access limits', compartment_access)


def access_endpoint():
    _, out, _ = srv.ehr('token', '--user', 'doc1', '--scope', 'user/*.rs')
    d = Client(srv, token=out.strip().splitlines()[-1], accept='application/json')
    r = d.get('/auth/access?patient=' + A)
    expect_status(r, 200)
    eq(r.json, {'patient': A, 'chart': True, 'break_glass': False, 'minutes': 60}, 'own panel')
    r = d.get('/auth/access?patient=Patient/' + B)
    eq((r.json['chart'], r.json['break_glass']), (False, True), 'outside the panel: break-glass offered')
    # after break-glass the chart is open, to the same token
    g = d.post('/auth/break-glass', body='{"patient": "%s", "reason": "unconscious in the ER"}' % B,
               content_type='application/json')
    expect_status(g, 201)
    eq(d.get('/auth/access?patient=' + B).json['chart'], True, 'open after break-glass')
    eq(d.get('/fhir/Patient/%s/Observation' % B).json['total'], 2, "B's chart now visible")
    expect_status(d.get('/auth/access?patient=bad%20id'), 400)
    expect_status(d.get('/auth/access'), 400)
    expect_status(d.post('/auth/access?patient=' + A, body='{}', content_type='application/json'), 405)
    d.close()
    # the admin sees every chart, and needs no break-glass
    r = c.get('/auth/access?patient=' + B, headers={'Accept': 'application/json'})
    eq((r.json['chart'], r.json['break_glass']), (True, False), 'admin')
    # front desk: demographics only, and no break-glass for the role
    _, out, _ = srv.ehr('token', '--user', 'desk1', '--scope', 'user/*.rs')
    f = Client(srv, token=out.strip().splitlines()[-1], accept='application/json')
    eq((f.get('/auth/access?patient=' + A).json['chart'], f.get('/auth/access?patient=' + A).json['break_glass']),
       (False, False), 'front desk')
    f.close()
    expect_status(Client(srv, token=None, accept='application/json').get('/auth/access?patient=' + A), 401)
test_expect_success('GET /auth/access says whether the chart is open to the caller', access_endpoint)

test_done()
