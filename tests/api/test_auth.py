#!/usr/bin/env python3
"""
test_auth.py - authentication and authorization of `ehr serve`, black-box:
tokens on /fhir (and the negative cases the ONC (g)(10) test kit tries, and
more), sign-in with lockout and no user enumeration, TOTP MFA enrolment and
sign-in with codes computed here, session idle time-out and logout, the
SMART App Launch code flow with PKCE driven step by step, refresh rotation
and reuse detection, revocation and introspection, backend services with
RS384 and ES384 client assertions, scope enforcement, break-glass, the
AuditEvent view, audit tampering detected by `ehr audit verify`, the
first-admin bootstrap and --insecure-no-auth.

Expected behaviour: docs/security.md; SMART App Launch 2.0; RFC 6749, 6750,
7009, 7636, 7662; RFC 6238.
"""
import base64
import json as jsonlib
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403
from harness import Server, ServerError  # noqa: E402
from authlib import (Browser, Key, b64u, bearer, hidden_inputs, jwt_claims,  # noqa: E402
                     location_query, pkce, rs256_verify, totp)

LOCKOUT_SECONDS = 4
srv = start_server(name='auth', extra_args=['--lockout-attempts', '3', '--lockout-seconds',
                                            str(LOCKOUT_SECONDS)])
admin = srv.client()
BASE = srv.base()
FHIR = BASE + '/fhir'
REDIRECT = 'http://127.0.0.1:9/cb'
PW = {}
NEGATIVE = [0]   # negative cases tried (refusals checked)


def neg(n=1):
    NEGATIVE[0] += n


def user(name, role, *patients, password=None):
    pw = password or 'Secret-' + os.urandom(6).hex()
    args = ['user', 'add', '--username', name, '--password', pw, '--role', role]
    for p in patients:
        args += ['--patient', 'Patient/' + p]
    srv.ehr(*args)
    PW[name] = pw
    return pw


def token(name, scope, *extra):
    _, out, _ = srv.ehr('token', '--user', name, '--scope', scope, *extra)
    return out.strip().splitlines()[-1]


def client_add(*args):
    _, out, _ = srv.ehr('client', 'add', *args)
    vals = dict(line.split(': ', 1) for line in out.splitlines() if ': ' in line)
    return vals['client_id'], vals.get('client_secret')


def put(res):
    r = admin.put('/fhir/%s/%s' % (res['resourceType'], res['id']), json=res)
    expect_status(r, 200, 201)


def obs(oid, pid):
    return {'resourceType': 'Observation', 'id': oid, 'status': 'final',
            'code': {'text': 'blood pressure'}, 'subject': {'reference': 'Patient/' + pid}}


def cond(cid, pid):
    return {'resourceType': 'Condition', 'id': cid, 'code': {'text': 'hypertension'},
            'subject': {'reference': 'Patient/' + pid}}


def audit_lines(*args):
    _, out, _ = srv.ehr('audit', 'report', *args)
    return out.splitlines()


def expect_401(r, error=None):
    expect_status(r, 401)
    www = r.header('WWW-Authenticate') or ''
    check(www.startswith('Bearer'), 'WWW-Authenticate %r is not a Bearer challenge' % www)
    if error:
        check('error="%s"' % error in www, 'WWW-Authenticate %r lacks error="%s"' % (www, error))
    neg()


# --------------------------------------------------------------------------
# data and people

for pid in ('pa', 'pb'):
    put({'resourceType': 'Patient', 'id': pid, 'name': [{'family': 'Test-' + pid}]})
    put(obs('obs-' + pid, pid))
    put(cond('cond-' + pid, pid))

user('pat-a', 'patient', 'pa')
user('pat-b', 'patient', 'pb')
user('dr-a', 'physician', 'pa')
user('dr-b', 'physician', 'pb')
user('desk', 'front-desk')
user('audi', 'auditor')
user('locky', 'biller')


# --------------------------------------------------------------------------
# tokens on /fhir

def t_public():
    r = Client(srv, token=None).get('/fhir/metadata')
    expect_status(r, 200)
    r = Client(srv, token=None, accept='application/json').get('/.well-known/smart-configuration')
    expect_status(r, 200)
    cfg = r.json
    for k in ('issuer', 'authorization_endpoint', 'token_endpoint', 'jwks_uri', 'capabilities',
              'code_challenge_methods_supported', 'grant_types_supported',
              'token_endpoint_auth_methods_supported', 'scopes_supported'):
        check(k in cfg, 'smart-configuration lacks %s' % k)
    eq(cfg['code_challenge_methods_supported'], ['S256'], 'PKCE methods')
    check('plain' not in cfg['code_challenge_methods_supported'], 'plain PKCE offered')
    eq(cfg['token_endpoint'], BASE + '/oauth/token', 'token_endpoint')
    for cap in ('launch-ehr', 'launch-standalone', 'client-public', 'client-confidential-symmetric',
                'client-confidential-asymmetric', 'permission-v2', 'sso-openid-connect'):
        check(cap in cfg['capabilities'], 'capability %s missing' % cap)
    r2 = Client(srv, token=None, accept='application/json').get(
        '/fhir/.well-known/smart-configuration')
    expect_status(r2, 200)
    eq(r2.json['token_endpoint'], cfg['token_endpoint'], 'both discovery documents agree')
    r = Client(srv, token=None, accept='application/json').get('/oauth/jwks')
    expect_status(r, 200)
    check(r.json['keys'] and r.json['keys'][0]['kty'] == 'RSA', 'JWKS has the RSA key')


test_expect_success('metadata, SMART configuration (both places) and JWKS are public', t_public)


def t_no_token():
    anon = Client(srv, token=None)
    for path in ('/fhir/Patient', '/fhir/Patient/pa', '/fhir/Observation?subject=Patient/pa',
                 '/fhir/_history', '/fhir/Patient/pa/_history', '/fhir/AuditEvent'):
        r = anon.get(path)
        expect_401(r)
        check(b'"OperationOutcome"' in r.content(), '401 body is not an OperationOutcome')
    r = anon.post('/fhir/Patient', json={'resourceType': 'Patient'})
    expect_401(r)
    r = anon.delete('/fhir/Patient/pa')
    expect_401(r)
    expect_status(admin.get('/fhir/Patient/pa'), 200)


test_expect_success('no token: 401 with WWW-Authenticate: Bearer on reads and writes', t_no_token)


def t_bad_tokens():
    now = int(time.time())
    jwt_none = b64u('{"alg":"none","typ":"JWT"}') + '.' + b64u(jsonlib.dumps(
        {'sub': 'harness-admin', 'exp': now + 3600, 'scope': 'user/*.cruds'})) + '.'
    k = Key('RSA')
    jwt_other = k.jwt({'sub': 'harness-admin', 'exp': now + 3600, 'aud': FHIR,
                       'scope': 'user/*.cruds'}, alg='RS256')
    cases = [
        ('Bearer garbage', 'invalid_token'),
        ('Bearer ' + 'A' * 43, 'invalid_token'),                     # unknown
        ('Bearer ' + admin.token[:-1] + ('A' if admin.token[-1] != 'A' else 'B'), 'invalid_token'),
        ('Bearer ' + jwt_none, 'invalid_token'),                     # alg none
        ('Bearer ' + jwt_other, 'invalid_token'),                    # signed by someone's key
        ('Bearer ' + 'x' * 5000, None),                              # oversized
        ('Basic ' + b64u('harness-admin:x'), 'invalid_request'),
        ('bearer', 'invalid_request'),
        ('Token ' + admin.token, 'invalid_request'),
    ]
    for h, err in cases:
        r = Client(srv, token=None).get('/fhir/Patient/pa', headers={'Authorization': h})
        if len(h) > 4000:
            check(r.status in (400, 401, 431), 'oversized header answered %d' % r.status)
            neg()
            continue
        expect_401(r, err)
    # the token in a query parameter is not accepted (RFC 6750 2.3 is optional; refused here)
    r = Client(srv, token=None).get('/fhir/Patient/pa?access_token=' + admin.token)
    expect_401(r)


test_expect_success('malformed, unknown, altered, alg:none and foreign-signed tokens: 401 invalid_token',
                    t_bad_tokens)


def t_expired():
    t = token('pat-a', 'patient/*.rs', '--ttl', '1')
    c = bearer(srv, t)
    expect_status(c.get('/fhir/Observation/obs-pa'), 200)
    time.sleep(2.2)
    expect_401(c.get('/fhir/Observation/obs-pa'), 'invalid_token')


test_expect_success('an expired access token: 401 invalid_token', t_expired)


def t_user_changes():
    user('temp-nurse', 'nurse')
    t = token('temp-nurse', 'user/*.rs')
    c = bearer(srv, t)
    expect_status(c.get('/fhir/Practitioner?_count=1'), 200)
    srv.ehr('user', 'disable', '--username', 'temp-nurse')
    expect_401(c.get('/fhir/Practitioner?_count=1'), 'invalid_token')
    srv.ehr('user', 'enable', '--username', 'temp-nurse')
    t2 = token('temp-nurse', 'user/*.rs')
    c2 = bearer(srv, t2)
    expect_status(c2.get('/fhir/Practitioner?_count=1'), 200)
    srv.ehr('user', 'reset-password', '--username', 'temp-nurse', '--password', 'another-pw-9')
    expect_401(c2.get('/fhir/Practitioner?_count=1'), 'invalid_token')
    rc, _, err = srv.ehr('token', '--user', 'temp-nurse', '--scope', 'system/*.rs', check_rc=False)
    check(rc != 0 and 'system/' in err, 'system/ scopes for a user: %d %s' % (rc, err))
    neg()


test_expect_success('disabling a user or resetting the password voids their tokens at once',
                    t_user_changes)


def t_headers():
    r = admin.get('/fhir/Patient/pa')
    expect_status(r, 200)
    eq(r.header('Cache-Control'), 'no-store', 'Cache-Control on PHI')
    eq(r.header('X-Content-Type-Options'), 'nosniff', 'X-Content-Type-Options')
    eq(r.header('X-Frame-Options'), 'DENY', 'X-Frame-Options')
    b = Browser(srv)
    r = b.get('/auth/login')
    expect_status(r, 200)
    csp = r.header('Content-Security-Policy') or ''
    for part in ("default-src 'none'", "frame-ancestors 'none'", "form-action 'self'"):
        check(part in csp, 'CSP %r lacks %s' % (csp, part))
    check('<form method="post" action="/auth/login">' in r.content().decode(), 'login form')


test_expect_success('no-store, nosniff, frame denial on /fhir; a strict CSP on the sign-in page',
                    t_headers)


# --------------------------------------------------------------------------
# sign-in, lockout, enumeration

def t_no_enumeration():
    b = Browser(srv)
    answers = []
    for name, pw in (('pat-a', 'wrong-password'), ('no-such-user', 'wrong-password'),
                     ('no-such-user', PW['pat-a']), ('bad name!', 'x'), ('pat-a', '')):
        r = b.login(name, pw)
        answers.append((r.status, r.content()))
        neg()
    check(len(set(answers)) == 1, 'sign-in failures differ: %r' % answers)
    eq(answers[0][0], 401, 'failed sign-in status')
    check(b'invalid username or password' in answers[0][1], 'generic message: %r' % answers[0][1])
    # the HTML form says the same
    r = b.post('/auth/login', form={'username': 'no-such-user', 'password': 'x'})
    expect_status(r, 401)
    check(b'Invalid username or password' in r.content(), 'HTML failure message')


test_expect_success('sign-in failures look the same: unknown user, wrong password, bad name',
                    t_no_enumeration)


def t_lockout():
    b = Browser(srv)
    for _ in range(3):
        expect_status(b.login('locky', 'wrong-password'), 401)
    r = b.login('locky', PW['locky'])
    expect_status(r, 401)       # locked: the right password is refused ...
    check(b'invalid username or password' in r.content(), 'a locked account says nothing more')
    neg(4)
    time.sleep(LOCKOUT_SECONDS + 0.5)
    r = b.login('locky', PW['locky'])
    expect_status(r, 200)       # ... until the lock ends
    eq(r.json.get('status'), 'ok', 'biller signs in without MFA')
    lines = audit_lines('--user', 'locky', '--action', 'login')
    check(any('failed' in l and 'locked' in l for l in lines), 'the lock is in the audit log: %r'
          % lines[-6:])
    check(any(' ok ' in l for l in lines), 'the successful sign-in is audited')


test_expect_success('3 failed sign-ins lock the account (same answer), the lock ends after %ds'
                    % LOCKOUT_SECONDS, t_lockout)


MFA = {}


def t_mfa_enrol_and_sign_in():
    b = Browser(srv)
    r = b.login('dr-a', PW['dr-a'])
    expect_status(r, 200)
    eq(r.json['status'], 'mfa_enrollment_required', 'a physician must enrol')
    # nothing but enrolment works in this state
    r = b.get('/auth/session', accept='application/json')
    eq(r.json.get('state'), 'enroll', 'session state before enrolment')
    r = b.get('/auth/mfa/enroll', accept='application/json')
    expect_status(r, 200)
    secret = r.json['secret']
    check(r.json['otpauth_uri'].startswith('otpauth://totp/ehr:dr-a?secret=' + secret),
          'otpauth URI %r' % r.json['otpauth_uri'])
    check(r.json['qr_svg'].startswith('<svg'), 'QR code as SVG')
    r = b.post('/auth/mfa/enroll', json_body={'code': '000000' if totp(secret) != '000000'
                                              else '111111'})
    expect_status(r, 401)
    neg()
    enrol_code = totp(secret)
    r = b.post('/auth/mfa/enroll', json_body={'code': enrol_code})
    expect_status(r, 200)
    codes = r.json['recovery_codes']
    eq(len(codes), 10, 'recovery codes')
    MFA['dr-a'] = secret
    MFA['dr-a-recovery'] = codes
    eq(b.get('/auth/session', accept='application/json').json['state'], 'ok', 'enrolled')
    # sign in again: password, then a TOTP code
    b2 = Browser(srv)
    r = b2.login('dr-a', PW['dr-a'])
    eq(r.json['status'], 'mfa_required', 'second sign-in asks for a code')
    expect_status(b2.post('/auth/mfa', json_body={'code': '12345'}), 401)
    expect_status(b2.post('/auth/mfa', json_body={'code': enrol_code}), 401)  # replayed code
    neg(2)
    r = b2.post('/auth/mfa', json_body={'code': totp(secret, offset=1)})  # within the window
    expect_status(r, 200)
    eq(b2.get('/auth/session', accept='application/json').json['state'], 'ok', 'signed in')
    # a recovery code works once
    b3 = Browser(srv)
    b3.login('dr-a', PW['dr-a'])
    expect_status(b3.post('/auth/mfa', json_body={'code': codes[0]}), 200)
    b4 = Browser(srv)
    b4.login('dr-a', PW['dr-a'])
    expect_status(b4.post('/auth/mfa', json_body={'code': codes[0]}), 401)
    neg()
    # the HTML enrolment page shows the QR code (an enrolled user is not offered it)
    b5 = Browser(srv)
    b5.login('dr-b', PW['dr-b'])
    r = b5.get('/auth/mfa/enroll')
    expect_status(r, 200)
    check(b'<svg' in r.content() and b'otpauth' not in r.content(), 'QR page')
    MFA['dr-b-browser'] = b5
    MFA['dr-a-browser'] = b2


test_expect_success('MFA: enrolment with a QR code, sign-in with a TOTP code computed here, no '
                    'replay, recovery codes once', t_mfa_enrol_and_sign_in)


def t_logout():
    b = Browser(srv)
    expect_status(b.login('pat-a', PW['pat-a']), 200)
    cookie = dict(b.cookies)
    eq(b.get('/auth/session', accept='application/json').json['user'], 'pat-a', 'session user')
    r = b.post('/auth/logout', json_body={})
    expect_status(r, 200)
    check(any('Max-Age=0' in h for h in r.header_all('Set-Cookie')), 'logout clears the cookie')
    b.cookies = cookie   # the old cookie, replayed
    expect_status(b.get('/auth/session', accept='application/json'), 401)
    neg()


test_expect_success('logout ends the session on the server: the old cookie is worthless', t_logout)


def t_idle_timeout():
    s2 = Server(['--session-idle', '2'], name='idle').start()
    s2.ehr('user', 'add', '--username', 'clerk', '--password', 'Secret-idle-123', '--role',
           'front-desk')
    b = Browser(s2)
    r = b.login('clerk', 'Secret-idle-123')
    expect_status(r, 200)
    check(any('HttpOnly' in h and 'SameSite=Lax' in h for h in r.header_all('Set-Cookie')),
          'session cookie attributes: %r' % r.header_all('Set-Cookie'))
    for _ in range(3):   # activity keeps it alive past the idle time
        time.sleep(0.8)
        expect_status(b.get('/auth/session', accept='application/json'), 200)
    time.sleep(3)
    expect_status(b.get('/auth/session', accept='application/json'), 401)
    neg()
    s2.stop()


test_expect_success('session idle time-out (--session-idle 2): activity keeps it, 3 s idle ends it',
                    t_idle_timeout)


# --------------------------------------------------------------------------
# the SMART App Launch code flow, step by step

APP = {}


def authorize_url(client_id, challenge, scope, state='st-1', aud=FHIR, method='S256',
                  redirect=REDIRECT, extra=None):
    q = {'response_type': 'code', 'client_id': client_id, 'redirect_uri': redirect,
         'scope': scope, 'state': state, 'aud': aud, 'code_challenge': challenge,
         'code_challenge_method': method}
    q.update(extra or {})
    q = {k: v for k, v in q.items() if v is not None}
    return '/oauth/authorize?' + urllib.parse.urlencode(q)


def token_post(form, auth=None):
    c = Client(srv, token=None, accept='application/json')
    h = {'Authorization': auth} if auth else None
    return c.post('/oauth/token', body=urllib.parse.urlencode(form),
                  content_type='application/x-www-form-urlencoded', headers=h)


def code_flow(b, client_id, scope, pick=None, launch=None):
    verifier, challenge = pkce()
    r = b.get(authorize_url(client_id, challenge, scope, extra={'launch': launch} if launch
                            else None))
    expect_status(r, 200)
    form = hidden_inputs(r.content())
    check(form.get('csrf'), 'the consent form carries a CSRF token')
    form['decision'] = 'allow'
    if pick:
        form['patient'] = pick
    r = b.post('/oauth/authorize', form=form)
    expect_status(r, 302)
    loc, q = location_query(r)
    return loc, q, verifier


def t_code_flow():
    cid, _ = client_add('--name', 'Test App', '--redirect-uri', REDIRECT)
    APP['public'] = cid
    b = Browser(srv)
    verifier, challenge = pkce()
    scope = 'launch/patient openid fhirUser patient/Observation.rs offline_access'
    url = authorize_url(cid, challenge, scope)
    # not signed in: to the sign-in page, coming back afterwards
    r = b.get(url)
    expect_status(r, 302)
    loc = r.header('Location')
    check(loc.startswith('/auth/login?next='), 'sent to sign in: %r' % loc)
    nxt = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query)['next'][0]
    r = b.post('/auth/login', form={'username': 'pat-a', 'password': PW['pat-a'], 'next': nxt})
    expect_status(r, 303)
    eq(r.header('Location'), nxt, 'back to the authorization after sign-in')
    r = b.get(nxt)
    expect_status(r, 200)
    page = r.content().decode()
    check('Test App' in page and 'patient/Observation.rs' in page, 'consent page names app and scopes')
    csp = r.header('Content-Security-Policy')
    check("form-action 'self' http://127.0.0.1:9" in csp, 'CSP allows the redirect: %r' % csp)
    form = hidden_inputs(page)
    form['decision'] = 'allow'
    r = b.post('/oauth/authorize', form=form)
    expect_status(r, 302)
    loc, q = location_query(r)
    check(loc.startswith(REDIRECT + '?'), 'redirected to the app: %r' % loc)
    eq(q.get('state'), 'st-1', 'state returned')
    code = q['code']
    r = token_post({'grant_type': 'authorization_code', 'code': code, 'redirect_uri': REDIRECT,
                    'client_id': cid, 'code_verifier': verifier})
    expect_status(r, 200)
    tr = r.json
    eq(tr['token_type'], 'Bearer', 'token_type')
    eq(tr['patient'], 'pa', 'patient context: the patient user\'s own record')
    check('refresh_token' in tr, 'offline_access gives a refresh token')
    check(r.header('Cache-Control') == 'no-store', 'token response not cached')
    # the id_token: RS256, signed by a key of the JWKS, about this user and app
    idt = tr['id_token']
    jwks = Client(srv, token=None, accept='application/json').get('/oauth/jwks').json
    hdr = jsonlib.loads(base64.urlsafe_b64decode(idt.split('.')[0] + '=='))
    key = [k for k in jwks['keys'] if k['kid'] == hdr['kid']][0]
    check(rs256_verify(idt, key), 'the id_token signature verifies')
    claims = jwt_claims(idt)
    eq(claims['aud'], cid, 'id_token aud')
    eq(claims['sub'], 'pat-a', 'id_token sub')
    eq(claims['iss'], BASE, 'id_token iss: the issuer of the SMART configuration')
    check(claims['exp'] > time.time(), 'id_token exp')
    check(claims['fhirUser'].endswith('/fhir/Patient/pa'), 'fhirUser %r' % claims['fhirUser'])
    # and FHIR with it
    app = bearer(srv, tr['access_token'])
    r = app.get('/fhir/Observation')
    expect_status(r, 200)
    ids = {e['resource']['id'] for e in bundle_entries(r.json)}
    eq(ids, {'obs-pa'}, 'the app sees the patient\'s Observations only')
    expect_status(app.get('/fhir/Observation/obs-pb'), 404)
    expect_status(app.get('/fhir/Condition/cond-pa'), 403)
    expect_status(app.post('/fhir/Observation', json=obs('new', 'pa')), 403)
    neg(3)
    APP['token'] = tr
    APP['browser'] = b


test_expect_success('SMART standalone launch: sign in, consent, code, PKCE token, id_token, FHIR',
                    t_code_flow)


def t_authorize_errors():
    cid = APP['public']
    b = APP['browser']
    v, ch = pkce()
    scope = 'patient/Observation.rs launch/patient'
    # answered here, never redirected: unknown client, unregistered redirect
    for url in (authorize_url('no-such-app', ch, scope),
                authorize_url(cid, ch, scope, redirect='http://127.0.0.1:9/evil'),
                authorize_url(cid, ch, scope, redirect=None)):
        r = b.get(url)
        expect_status(r, 400)
        check(not r.header('Location'), 'no redirect for a bad client or redirect_uri')
        neg()
    # redirected with an error
    cases = [
        (authorize_url(cid, None, scope, method=None), 'invalid_request'),        # no PKCE
        (authorize_url(cid, v, scope, method='plain'), 'invalid_request'),         # plain
        (authorize_url(cid, ch, scope, method='S512'), 'invalid_request'),
        (authorize_url(cid, 'short', scope), 'invalid_request'),
        (authorize_url(cid, ch, scope, aud='http://evil.example/fhir'), 'invalid_request'),
        (authorize_url(cid, ch, scope, aud=None), 'invalid_request'),
        (authorize_url(cid, ch, scope, state=None), 'invalid_request'),
        (authorize_url(cid, ch, scope, extra={'response_type': 'token'}),
         'unsupported_response_type'),
        (authorize_url(cid, ch, 'patient/Observation.zz'), 'invalid_scope'),
        (authorize_url(cid, ch, scope, extra={'launch': 'not-a-launch'}), 'invalid_request'),
    ]
    for url, err in cases:
        r = b.get(url)
        expect_status(r, 302)
        loc, q = location_query(r)
        check(loc.startswith(REDIRECT), 'error redirect to the app: %r' % loc)
        eq(q.get('error'), err, 'error for %s' % url)
        neg()
    # a forged decision (no CSRF token) is refused
    r = b.get(authorize_url(cid, ch, scope))
    form = hidden_inputs(r.content())
    form['decision'] = 'allow'
    form['csrf'] = 'forged'
    r = b.post('/oauth/authorize', form=form)
    expect_status(r, 400)
    neg()
    # deny
    form = hidden_inputs(b.get(authorize_url(cid, ch, scope)).content())
    form['decision'] = 'deny'
    r = b.post('/oauth/authorize', form=form)
    loc, q = location_query(r)
    eq(q.get('error'), 'access_denied', 'the user said no')


test_expect_success('authorize: bad client/redirect answered, not redirected; missing or plain PKCE, '
                    'wrong aud, no state, bad scope: error redirects; CSRF', t_authorize_errors)


def t_token_errors():
    cid = APP['public']
    b = APP['browser']
    scope = 'launch/patient patient/Observation.rs'
    # wrong verifier, missing verifier, wrong redirect_uri, other client: invalid_grant
    for tweak in ('wrong', 'missing', 'redirect', 'client'):
        loc, q, verifier = code_flow(b, cid, scope)
        form = {'grant_type': 'authorization_code', 'code': q['code'], 'redirect_uri': REDIRECT,
                'client_id': cid, 'code_verifier': verifier}
        if tweak == 'wrong':
            form['code_verifier'] = pkce()[0]
        elif tweak == 'missing':
            del form['code_verifier']
        elif tweak == 'redirect':
            form['redirect_uri'] = REDIRECT + 'x'
        else:
            other, _ = client_add('--name', 'Other', '--redirect-uri', REDIRECT)
            form['client_id'] = other
        r = token_post(form)
        expect_status(r, 400)
        eq(r.json['error'], 'invalid_grant', 'error for %s' % tweak)
        # a failed try uses the code up
        form['code_verifier'] = verifier
        form['redirect_uri'] = REDIRECT
        form['client_id'] = cid
        eq(token_post(form).json.get('error'), 'invalid_grant', 'the code is gone after %s' % tweak)
        neg(2)
    # invalid client
    loc, q, verifier = code_flow(b, cid, scope)
    r = token_post({'grant_type': 'authorization_code', 'code': q['code'], 'redirect_uri': REDIRECT,
                    'client_id': 'no-such-app', 'code_verifier': verifier})
    expect_status(r, 401)
    eq(r.json['error'], 'invalid_client', 'unknown client')
    r = token_post({'grant_type': 'authorization_code', 'code': q['code'], 'redirect_uri': REDIRECT,
                    'client_id': cid, 'client_secret': 'x', 'code_verifier': verifier})
    expect_status(r, 401)
    neg(2)
    # a code used twice: the second use fails and revokes what the first gave
    loc, q, verifier = code_flow(b, cid, scope)
    form = {'grant_type': 'authorization_code', 'code': q['code'], 'redirect_uri': REDIRECT,
            'client_id': cid, 'code_verifier': verifier}
    r = token_post(form)
    expect_status(r, 200)
    app = bearer(srv, r.json['access_token'])
    expect_status(app.get('/fhir/Observation/obs-pa'), 200)
    r = token_post(form)
    eq(r.json.get('error'), 'invalid_grant', 'code reuse')
    expect_401(app.get('/fhir/Observation/obs-pa'), 'invalid_token')
    neg()
    for g in ('password', 'implicit', ''):
        r = token_post({'grant_type': g, 'client_id': cid})
        check(r.status == 400 and r.json['error'] == 'unsupported_grant_type', 'grant %r' % g)
        neg()


test_expect_success('token endpoint: wrong/missing verifier, wrong redirect, other or unknown '
                    'client, reused code (revokes its tokens), unsupported grants', t_token_errors)


def t_refresh():
    cid = APP['public']
    rt1 = APP['token']['refresh_token']
    r = token_post({'grant_type': 'refresh_token', 'refresh_token': rt1, 'client_id': cid})
    expect_status(r, 200)
    t2 = r.json
    check(t2['refresh_token'] != rt1, 'the refresh token rotates')
    eq(t2['patient'], 'pa', 'the context survives a refresh')
    app2 = bearer(srv, t2['access_token'])
    expect_status(app2.get('/fhir/Observation/obs-pa'), 200)
    # narrower scope on refresh is allowed, wider is not granted
    r = token_post({'grant_type': 'refresh_token', 'refresh_token': t2['refresh_token'],
                    'client_id': cid, 'scope': 'patient/Observation.r patient/Condition.rs'})
    expect_status(r, 200)
    t3 = r.json
    check('Condition' not in t3['scope'], 'refresh does not widen: %r' % t3['scope'])
    # bogus refresh token, and another client's
    eq(token_post({'grant_type': 'refresh_token', 'refresh_token': 'bogus' * 9,
                   'client_id': cid}).json.get('error'), 'invalid_grant', 'bogus refresh')
    other, _ = client_add('--name', 'Other2', '--redirect-uri', REDIRECT)
    eq(token_post({'grant_type': 'refresh_token', 'refresh_token': t3['refresh_token'],
                   'client_id': other}).json.get('error'), 'invalid_grant', 'another client')
    neg(2)
    # reuse of an old refresh token: refused, and the whole family is revoked
    r = token_post({'grant_type': 'refresh_token', 'refresh_token': rt1, 'client_id': cid})
    eq(r.json.get('error'), 'invalid_grant', 'old refresh token reused')
    expect_401(bearer(srv, t3['access_token']).get('/fhir/Observation/obs-pa'), 'invalid_token')
    eq(token_post({'grant_type': 'refresh_token', 'refresh_token': t3['refresh_token'],
                   'client_id': cid}).json.get('error'), 'invalid_grant', 'family revoked')
    neg(2)


test_expect_success('refresh tokens rotate; bogus, foreign or reused ones are refused; reuse '
                    'revokes the family', t_refresh)


def t_revoke_introspect():
    cid, secret = client_add('--name', 'Conf', '--type', 'confidential', '--redirect-uri', REDIRECT)
    check(secret, 'a confidential client gets a secret')
    b = APP['browser']
    loc, q, verifier = code_flow(b, cid, 'launch/patient patient/Observation.rs offline_access')
    basic = 'Basic ' + base64.b64encode(('%s:%s' % (cid, secret)).encode()).decode()
    form = {'grant_type': 'authorization_code', 'code': q['code'], 'redirect_uri': REDIRECT,
            'code_verifier': verifier}
    r = token_post(form, auth='Basic ' + base64.b64encode(
        ('%s:wrong' % cid).encode()).decode())
    expect_status(r, 401)
    neg()
    r = token_post(form, auth=basic)
    expect_status(r, 200)
    at = r.json['access_token']
    intro = Client(srv, token=None, accept='application/json')

    def introspect(tok, auth=basic):
        return intro.post('/oauth/introspect', body=urllib.parse.urlencode({'token': tok}),
                          content_type='application/x-www-form-urlencoded',
                          headers={'Authorization': auth})
    r = introspect(at)
    expect_status(r, 200)
    eq(r.json['active'], True, 'active token')
    eq(r.json['client_id'], cid, 'introspected client')
    eq(r.json['patient'], 'pa', 'introspected patient')
    eq(introspect(APP['token']['access_token']).json['active'], False,
       'another client\'s token is not shown')
    expect_status(introspect(at, auth='Basic ' + base64.b64encode(
        b'nobody:x').decode()), 401)
    neg(2)
    r = intro.post('/oauth/revoke', body=urllib.parse.urlencode({'token': at}),
                   content_type='application/x-www-form-urlencoded', headers={'Authorization': basic})
    expect_status(r, 200)
    eq(introspect(at).json['active'], False, 'revoked')
    expect_401(bearer(srv, at).get('/fhir/Observation/obs-pa'), 'invalid_token')


test_expect_success('revocation (RFC 7009) and introspection (RFC 7662) with a confidential client',
                    t_revoke_introspect)


def t_ehr_launch_and_picker():
    cid = APP['public']
    b = MFA['dr-a-browser']
    # the EHR makes a launch context for its signed-in clinician
    r = b.post('/auth/launch', json_body={'patient': 'Patient/pa'})
    expect_status(r, 201)
    launch = r.json['launch']
    loc, q, verifier = code_flow(b, cid, 'launch patient/*.rs openid fhirUser', launch=launch)
    r = token_post({'grant_type': 'authorization_code', 'code': q['code'], 'redirect_uri': REDIRECT,
                    'client_id': cid, 'code_verifier': verifier})
    expect_status(r, 200)
    eq(r.json['patient'], 'pa', 'EHR launch context')
    app = bearer(srv, r.json['access_token'])
    expect_status(app.get('/fhir/Condition/cond-pa'), 200)
    expect_status(app.get('/fhir/Condition/cond-pb'), 404)
    # not for a patient outside the panel
    r = b.post('/auth/launch', json_body={'patient': 'Patient/pb'})
    expect_status(r, 403)
    # standalone: the picker; a patient outside the panel is refused
    loc, q, verifier = code_flow(b, cid, 'launch/patient patient/*.rs', pick='pb')
    eq(q.get('error'), 'access_denied', 'picking another panel\'s patient')
    loc, q, verifier = code_flow(b, cid, 'launch/patient patient/*.rs', pick='pa')
    check('code' in q, 'picking a panel patient works')
    neg(3)


test_expect_success('EHR launch and the clinician patient picker respect the panel',
                    t_ehr_launch_and_picker)


# --------------------------------------------------------------------------
# backend services (SMART Backend Services, private_key_jwt)

def assertion(key, cid, **over):
    now = int(time.time())
    claims = {'iss': cid, 'sub': cid, 'aud': BASE + '/oauth/token', 'exp': now + 240,
              'jti': str(uuid.uuid4())}
    claims.update(over)
    claims = {k: v for k, v in claims.items() if v is not None}
    return key.jwt(claims)


def cc(a, scope='system/Observation.rs', cid=None):
    form = {'grant_type': 'client_credentials', 'scope': scope,
            'client_assertion_type': 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
            'client_assertion': a}
    if cid:
        form['client_id'] = cid
    return token_post(form)


def t_backend():
    for kind in ('RSA', 'EC'):
        key = Key(kind)
        path = os.path.join(srv.tmpdir, 'jwks-%s.json' % kind)
        with open(path, 'w') as f:
            f.write(key.jwks())
        cid, _ = client_add('--name', 'Backend ' + kind, '--type', 'backend', '--jwks', path,
                            '--scope', 'system/Observation.rs system/Patient.rs')
        a = assertion(key, cid)
        r = cc(a)
        expect_status(r, 200)
        check(r.json['expires_in'] <= 300, 'backend tokens are short: %r' % r.json['expires_in'])
        svc = bearer(srv, r.json['access_token'])
        r2 = svc.get('/fhir/Observation')
        expect_status(r2, 200)
        check(len(bundle_entries(r2.json)) >= 2, 'a system/ scope sees every patient')
        expect_status(svc.get('/fhir/Condition'), 403)
        expect_status(svc.post('/fhir/Observation', json=obs('bk', 'pa')), 403)
        neg(2)
        # replayed jti
        r = cc(a)
        expect_status(r, 401)
        eq(r.json['error'], 'invalid_client', 'replayed jti')
        other = Key(kind)
        now = int(time.time())
        bad = [
            ('exp too far ahead', assertion(key, cid, exp=now + 600)),
            ('expired', assertion(key, cid, exp=now - 10)),
            ('no exp', assertion(key, cid, exp=None)),
            ('no jti', assertion(key, cid, jti=None)),
            ('wrong aud', assertion(key, cid, aud=FHIR)),
            ('iss not the client', assertion(key, cid, iss='someone')),
            ('sub not the client', assertion(key, cid, sub='someone')),
            ('signed with another key', assertion(other, cid)),
            ('alg none', b64u('{"alg":"none","typ":"JWT"}') + '.' + b64u(jsonlib.dumps(
                {'iss': cid, 'sub': cid, 'aud': BASE + '/oauth/token', 'exp': now + 60,
                 'jti': str(uuid.uuid4())})) + '.'),
            ('RS256 instead of RS384', key.jwt({'iss': cid, 'sub': cid, 'aud': BASE +
                                                '/oauth/token', 'exp': now + 60,
                                                'jti': str(uuid.uuid4())},
                                               header={'alg': 'RS256' if kind == 'RSA'
                                                       else 'ES256', 'kid': 'k1'})),
            ('not a JWT', 'abc.def'),
        ]
        for what, tok in bad:
            r = cc(tok)
            if r.status != 401 or r.json.get('error') != 'invalid_client':
                raise TestFailure('%s (%s): %d %r' % (what, kind, r.status, r.json))
            neg()
        # scopes beyond the registration are not granted
        r = cc(assertion(key, cid), scope='system/Condition.rs system/Observation.cruds')
        expect_status(r, 200)
        eq(r.json['scope'], 'system/Observation.rs', 'granted at most what was registered')
        r = cc(assertion(key, cid), scope='system/Condition.rs')
        eq(r.json.get('error'), 'invalid_scope', 'nothing grantable')
        neg(2)
    # a public client cannot use client_credentials
    r = token_post({'grant_type': 'client_credentials', 'client_id': APP['public'],
                    'scope': 'system/*.rs'})
    check(r.status in (400, 401), 'public client_credentials: %d' % r.status)
    neg()


test_expect_success('backend services: RS384 and ES384 assertions; replayed jti, far exp, expired, '
                    'wrong aud/iss/sub, other key, alg none, RS256: invalid_client', t_backend)


# --------------------------------------------------------------------------
# scopes and roles

def t_scopes():
    ro = bearer(srv, token('pat-a', 'patient/Observation.read'))
    expect_status(ro.get('/fhir/Observation/obs-pa'), 200)
    expect_status(ro.get('/fhir/Observation?_id=obs-pa'), 200)
    expect_status(ro.get('/fhir/Condition/cond-pa'), 403)
    expect_status(ro.get('/fhir/Condition'), 403)
    expect_status(ro.post('/fhir/Observation', json=obs('x1', 'pa')), 403)
    expect_status(ro.put('/fhir/Observation/obs-pa', json=obs('obs-pa', 'pa')), 403)
    expect_status(ro.delete('/fhir/Observation/obs-pa'), 403)
    dr = bearer(srv, token('dr-a', 'user/*.rs'))
    expect_status(dr.get('/fhir/Condition/cond-pa'), 200)
    expect_status(dr.post('/fhir/Condition', json=cond('c-new', 'pa')), 403)
    dw = bearer(srv, token('dr-a', 'user/*.cruds'))
    r = dw.post('/fhir/Condition', json=cond('c-new', 'pa'))
    expect_status(r, 201)
    expect_status(dw.post('/fhir/Condition', json=cond('c-new', 'pb')), 403)
    desk = bearer(srv, token('desk', 'user/*.cruds'))
    expect_status(desk.get('/fhir/Patient/pa'), 200)
    expect_status(desk.get('/fhir/Observation/obs-pa'), 403)
    expect_status(desk.get('/fhir/Observation'), 403)
    neg(12)
    # 403s carry an OperationOutcome saying why, without data
    r = ro.get('/fhir/Condition/cond-pa')
    oo = expect_outcome(r, 403)
    check(b'hypertension' not in r.content(), 'no data in a 403')


test_expect_success('scopes: patient/Observation.read cannot write or read Condition; user/*.rs '
                    'cannot write; roles cap scopes', t_scopes)


def t_break_glass():
    drb = bearer(srv, token('dr-b', 'user/*.cruds'))
    expect_status(drb.get('/fhir/Observation/obs-pa'), 404)
    c = Client(srv, token=drb.token, accept='application/json')
    r = c.post('/auth/break-glass', json={'patient': 'Patient/pa'})
    expect_status(r, 400)                       # a reason is required
    r = c.post('/auth/break-glass', json={'patient': 'Patient/nobody', 'reason': 'emergency xx'})
    expect_status(r, 404)
    desk = Client(srv, token=token('desk', 'user/*.rs'), accept='application/json')
    expect_status(desk.post('/auth/break-glass', json={'patient': 'pa', 'reason': 'curious, really'}),
                  403)
    neg(4)
    reason = 'unconscious in the ER, no history available'
    r = c.post('/auth/break-glass', json={'patient': 'Patient/pa', 'reason': reason})
    expect_status(r, 201)
    eq(r.json['minutes'], 60, 'default duration')
    r = drb.get('/fhir/Observation/obs-pa')
    expect_status(r, 200)
    r = drb.get('/fhir/Observation?subject=Patient/pa')
    expect_status(r, 200)
    lines = audit_lines('--break-glass', '--user', 'dr-b')
    check(any('break-glass ok' in l and reason in l for l in lines), 'the grant is audited')
    check(any(' read ok ' in l and 'Observation/obs-pa' in l and 'BREAK-GLASS' in l
              for l in lines), 'the read through the glass is flagged: %r' % lines)
    check(not any('obs-pb' in l for l in lines), 'own-panel reads are not flagged')
    # auditors see it as AuditEvents with purpose of use BTG
    aud = bearer(srv, token('audi', 'user/*.rs'))
    r = aud.get('/fhir/AuditEvent?agent=dr-b&subtype=read&patient=pa')
    expect_status(r, 200)
    evs = [e['resource'] for e in bundle_entries(r.json)]
    check(evs, 'AuditEvents for dr-b reading pa')
    check(any(ag.get('purposeOfUse', [{}])[0].get('coding', [{}])[0].get('code') == 'BTG'
              for ev in evs for ag in ev['agent']), 'purposeOfUse BTG')


test_expect_success('break-glass: a reason required, role allowed; access granted, flagged in the '
                    'audit log and as AuditEvent purposeOfUse BTG', t_break_glass)


def t_auditevent_view():
    aud = bearer(srv, token('audi', 'user/*.rs'))
    r = aud.get('/fhir/AuditEvent?patient=Patient/pa&_count=5')
    expect_status(r, 200)
    b = r.json
    eq(b['resourceType'], 'Bundle', 'a Bundle')
    check(0 < len(b['entry']) <= 5, '_count respected')
    for e in b['entry']:
        ae = e['resource']
        eq(ae['resourceType'], 'AuditEvent', 'entries are AuditEvents')
        check(any(en.get('what', {}).get('reference') == 'Patient/pa'
                  for en in ae.get('entity', [])), 'about the patient')
    first = b['entry'][0]['resource']['id']
    expect_status(aud.get('/fhir/AuditEvent/' + first), 200)
    r = aud.get('/fhir/AuditEvent?subtype=login&outcome=4&date=ge2000-01-01')
    expect_status(r, 200)
    r = aud.get('/fhir/AuditEvent?date=bogus')
    expect_status(r, 400)
    expect_status(aud.post('/fhir/AuditEvent', json={'resourceType': 'AuditEvent'}), 405)
    for name in ('dr-a', 'pat-a', 'desk'):
        c = bearer(srv, token(name, 'user/*.rs'))
        expect_status(c.get('/fhir/AuditEvent'), 403)
        expect_status(c.get('/fhir/AuditEvent/1'), 403)
        neg(2)
    # the harness admin reads them too (admin role), but cannot write them
    expect_status(admin.get('/fhir/AuditEvent?_count=1'), 200)
    expect_status(admin.put('/fhir/AuditEvent/1', json={'resourceType': 'AuditEvent', 'id': '1'}),
                  405)
    neg()


test_expect_success('AuditEvent view: auditors search by patient, subtype, outcome, date; others 403',
                    t_auditevent_view)


def t_phi_not_in_logs():
    logs = srv.all_logs()
    for secret in [PW['pat-a'], PW['dr-a'], admin.token, APP['token']['access_token'],
                   'hypertension', 'Test-pa', MFA['dr-a']]:
        check(secret not in logs, 'the server log holds a secret or PHI: %r' % secret[:6])


test_expect_success('no passwords, tokens, TOTP secrets or PHI in the server log', t_phi_not_in_logs)


# --------------------------------------------------------------------------
# the audit log: verify, and tampering on copies of the database file

def verify(db, *extra):
    p = subprocess.run([EHR_BIN, 'audit', 'verify'] + store_args(db) + list(extra),
                       capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def pg_tamper_sql(sql):
    # the SQLite statements of the cases, in PostgreSQL's words: its one
    # row trigger guards UPDATE and DELETE together
    return (sql.replace('DROP TRIGGER audit_no_update;', 'ALTER TABLE audit DISABLE TRIGGER USER;')
               .replace('DROP TRIGGER audit_no_delete;', 'ALTER TABLE audit DISABLE TRIGGER USER;'))


def tamper(sql, name):
    if STORE == 'postgres':
        # a consistent copy of the live database (pg_dump), then the edit
        d = pg_new_db()
        dump = subprocess.run(['pg_dump', '-d', srv.db], capture_output=True, timeout=300)
        check(dump.returncode == 0, 'pg_dump: %r' % dump.stderr[:300])
        p = subprocess.run(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', d],
                           input=dump.stdout, capture_output=True, timeout=300)
        check(p.returncode == 0, 'restoring the copy: %r' % p.stderr[:300])
        if sql:
            rc, out = pg_sql(d, pg_tamper_sql(sql))
            check(rc == 0, 'tampering %s: %s' % (name, out))
        return d
    d = os.path.join(srv.tmpdir, 'tamper-%s.db' % name)
    src = sqlite3.connect(srv.db)
    dst = sqlite3.connect(d)
    src.backup(dst)     # a consistent copy, WAL included
    src.close()
    dst.executescript(sql)
    dst.commit()
    dst.close()
    # the way an intruder would: with the sqlite3 command-line tool
    return d


def sqlite_cli(db, sql):
    if STORE == 'postgres':
        return pg_sql(db, sql)
    p = subprocess.run(['sqlite3', db], input=sql, capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def t_audit_verify():
    rc, out = verify(srv.db)
    eq(rc, 0, 'verify on the live log: %s' % out)
    check('intact' in out, out)
    head = re.search(r'head (\d+):([0-9a-f]{64})', out)
    check(head, 'verify prints the head: %r' % out)
    n = int(head.group(1))
    check(n > 100, 'every access left a record (%d)' % n)
    k = n // 2
    # the triggers refuse changes made the ordinary way
    d = tamper('', 'copy')
    rc, out = sqlite_cli(d, 'UPDATE audit SET event = \'{}\' WHERE seq = %d;' % k)
    check(rc != 0 and 'append-only' in out, 'UPDATE refused by the trigger: %r' % out)
    rc, out = sqlite_cli(d, 'DELETE FROM audit WHERE seq = %d;' % k)
    check(rc != 0 and 'append-only' in out, 'DELETE refused by the trigger: %r' % out)
    neg(2)
    cases = [
        ('edit', 'DROP TRIGGER audit_no_update; UPDATE audit SET event = replace(event, '
                 '\'"user":"\', \'"user":"x\') WHERE seq = %d;' % k, k),
        ('edit-time', 'DROP TRIGGER audit_no_update; UPDATE audit SET time = time + 1 WHERE seq = %d;'
         % k, k),
        ('delete', 'DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq = %d;' % k, k),
        ('insert', 'DROP TRIGGER audit_no_update; '
                   'UPDATE audit SET seq = -seq WHERE seq >= %d; '
                   'UPDATE audit SET seq = -seq + 1 WHERE seq < 0; '
                   'INSERT INTO audit(seq, time, prev_hash, hash, event) SELECT %d, time, hash, '
                   'hash, \'{"action":"read","user":"ghost"}\' FROM audit WHERE seq = %d;'
         % (k, k, k - 1), k),
        ('reorder', 'DROP TRIGGER audit_no_update; '
                    'UPDATE audit SET event = (SELECT event FROM audit WHERE seq = %d) || \'\' '
                    'WHERE seq = %d;' % (k + 1, k), k),
        ('rehash-one', 'DROP TRIGGER audit_no_update; UPDATE audit SET hash = '
                       '\'0000000000000000000000000000000000000000000000000000000000000000\' '
                       'WHERE seq = %d;' % k, k),
        ('append-forged', 'INSERT INTO audit(seq, time, prev_hash, hash, event) VALUES (%d, 1, '
                          '\'x\', \'y\', \'{}\');' % (n + 1000), n + 1),
    ]
    for name, sql, bad in cases:
        d = tamper(sql, name)
        rc, out = verify(d)
        check(rc == 1, '%s: verify exit %d: %s' % (name, rc, out))
        check(('record %d' % bad) in out, '%s: names record %d: %r' % (name, bad, out))
        neg()
    # cutting records off the end keeps the chain, but not the recorded head
    d = tamper('DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq > %d;' % (n - 3), 'cut')
    rc, out = verify(d)
    eq(rc, 0, 'a shorter chain is a chain')
    rc, out = verify(d, '--head', '%d:%s' % (n, head.group(2)))
    check(rc == 1 and 'BROKEN' in out, 'the recorded head is gone: %r' % out)
    rc, out = verify(srv.db, '--head', '%d:%s' % (n, head.group(2)))
    eq(rc, 0, 'the live log still has its head: %s' % out)
    neg()


test_expect_success('ehr audit verify: intact live log; edited, deleted, inserted, reordered, '
                    're-hashed, forged and cut-off records each detected and named', t_audit_verify)


# --------------------------------------------------------------------------
# first start, and the development switch

def t_bootstrap():
    s3 = Server(name='fresh', auth=True)
    s3.token = 'unused'      # no harness user: the server's own first start
    s3.start()
    logs = s3.log_text()
    m = re.search(r'password is in (\S+)', logs)
    check(m, 'first start says where the admin password is: %r' % logs)
    path = m.group(1)
    if not os.path.isabs(path):
        path = os.path.join(s3.tmpdir, path)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    eq(mode, 0o600, 'password file mode')
    pw = open(path).read().strip()
    check(pw not in logs, 'the password itself is not in the log')
    b = Browser(s3)
    r = b.login('admin', pw)
    expect_status(r, 200)
    eq(r.json['status'], 'mfa_enrollment_required', 'the first admin enrols MFA')
    expect_401(Client(s3, token=None).get('/fhir/Patient'))
    s3.stop()
    # the second start makes no new admin
    s3.start()
    check('password is in' not in s3.log_text(), 'no second bootstrap')
    s3.stop()


test_expect_success('first start on an empty database: an admin, its password in a 0600 file', t_bootstrap)


def t_insecure():
    s4 = Server(name='insecure', auth=False).start()
    c = Client(s4, token=None)
    r = c.post('/fhir/Patient', json={'resourceType': 'Patient', 'id': 'x'})
    expect_status(r, 201)
    expect_status(c.get('/fhir/Patient'), 200)
    check('WARNING' in s4.log_text(), 'a warning at start')
    s4.stop()
    p = subprocess.run([EHR_BIN, 'serve', '--insecure-no-auth', '--bind', '0.0.0.0', '--port', '0',
                        '--db', os.path.join(s4.tmpdir, 'x.db')], capture_output=True, text=True,
                       timeout=60)
    check(p.returncode == 2 and 'loopback' in p.stderr, 'no insecure mode on a network: %r'
          % p.stderr)
    neg()
    lines = s4.ehr('audit', 'report', '--user', 'anonymous')[1].splitlines()
    check(any(' create ok user=anonymous' in l for l in lines), 'still audited: %r' % lines[:3])


test_expect_success('--insecure-no-auth: no tokens, loopback only, still audited', t_insecure)

def t_audit_survives_kill():
    s6 = Server(name='kill').start()
    c = s6.client()
    expect_status(c.put('/fhir/Patient/k1', json={'resourceType': 'Patient', 'id': 'k1'}), 201)
    for _ in range(25):
        expect_status(c.get('/fhir/Patient/k1'), 200)
    s6.kill()   # SIGKILL right after the answers: no clean shutdown
    lines = s6.ehr('audit', 'report', '--action', 'read')[1].splitlines()
    got = [l for l in lines if 'Patient/k1' in l and ' read ok ' in l]
    eq(len(got), 25, 'reads audited before they were answered, kept through a SIGKILL')
    rc, out, _ = s6.ehr('audit', 'verify', check_rc=False)
    eq(rc, 0, 'chain intact after the kill: %s' % out)


test_expect_success('every read answered is in the audit log even when the server is killed at once',
                    t_audit_survives_kill)


def t_tls():
    d = srv.tmpdir
    cert, key = os.path.join(d, 'cert.pem'), os.path.join(d, 'key.pem')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key,
                    '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], check=True,
                   capture_output=True)
    # the harness waits over plain HTTP: this one is started by hand
    import http.client
    import warnings
    import socket
    import ssl
    port = None
    with socket.socket() as sk:
        sk.bind(('127.0.0.1', 0))
        port = sk.getsockname()[1]
    p = subprocess.Popen([EHR_BIN, 'serve', '--port', str(port), '--db', os.path.join(d, 'tls.db'),
                          '--bind', '127.0.0.1', '--tls-cert', cert, '--tls-key', key],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        r = None
        for _ in range(100):
            try:
                conn = http.client.HTTPSConnection('127.0.0.1', port, context=ctx, timeout=10)
                conn.request('POST', '/auth/login', body='{"username":"x","password":"y"}',
                             headers={'Content-Type': 'application/json'})
                r = conn.getresponse()
                r.read()
                break
            except OSError:
                time.sleep(0.1)
        check(r is not None, 'the TLS server did not answer')
        hsts = r.getheader('Strict-Transport-Security') or ''
        check('max-age=' in hsts, 'HSTS on TLS: %r' % hsts)
        conn.close()
        # TLS 1.1 and older are refused by the server
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.check_hostname = False
        old.verify_mode = ssl.CERT_NONE
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', DeprecationWarning)
                old.minimum_version = ssl.TLSVersion.TLSv1
                old.maximum_version = ssl.TLSVersion.TLSv1_1
            old.set_ciphers('ALL:@SECLEVEL=0')
            with socket.create_connection(('127.0.0.1', port), timeout=10) as raw:
                try:
                    with old.wrap_socket(raw) as t:
                        raise TestFailure('a TLS %s handshake succeeded' % t.version())
                except ssl.SSLError:
                    neg()
        except (ValueError, ssl.SSLError):
            note('this Python cannot speak TLS 1.1; the refusal is not checked')
    finally:
        p.terminate()
        p.wait(10)


test_expect_success('TLS: HSTS on every answer; TLS 1.1 refused', t_tls)

note('negative cases tried: %d' % NEGATIVE[0])
test_done()
