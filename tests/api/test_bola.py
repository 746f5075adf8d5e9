#!/usr/bin/env python3
"""
test_bola.py - broken object level authorization, tried every way: two
patients (and a third for a proxy), clinicians with different panels, a
front-desk user, patient-scoped app tokens. For each resource type of the
patient compartment and each interaction (read, vread, instance, type and
system history, search by id and by identifier, search with _include,
_revinclude and _has, POST _search, update, patch, delete, conditional
create/update/delete, $everything, $export, transaction entries) nothing
outside what is granted may be seen or changed. Another patient's resource
answers exactly like one that does not exist (docs/security.md, "Answers").
Denied reads are audited.
"""
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

srv = start_server(name='bola')
admin = srv.client()
SYS = 'urn:bola'
CASES = [0]


def case(cond, msg):
    CASES[0] += 1
    check(cond, msg)


def subj(pid):
    return {'reference': 'Patient/' + pid}


def ident(rid):
    return [{'system': SYS, 'value': rid}]


# One builder per resource type of the Patient compartment we try.
BUILD = {
    'Observation': lambda rid, p: {'status': 'final', 'code': {'text': 'bp'}, 'subject': subj(p)},
    'Condition': lambda rid, p: {'code': {'text': 'hypertension'}, 'subject': subj(p)},
    'AllergyIntolerance': lambda rid, p: {'code': {'text': 'penicillin'}, 'patient': subj(p)},
    'MedicationRequest': lambda rid, p: {'status': 'active', 'intent': 'order',
                                         'medicationCodeableConcept': {'text': 'statin'},
                                         'subject': subj(p)},
    'Encounter': lambda rid, p: {'status': 'finished', 'class': {
        'system': 'http://terminology.hl7.org/CodeSystem/v3-ActCode', 'code': 'AMB'},
        'subject': subj(p)},
    'Immunization': lambda rid, p: {'status': 'completed', 'vaccineCode': {'text': 'flu'},
                                    'patient': subj(p), 'occurrenceDateTime': '2024-01-01'},
    'Procedure': lambda rid, p: {'status': 'completed', 'subject': subj(p)},
    'DiagnosticReport': lambda rid, p: {'status': 'final', 'code': {'text': 'cbc'},
                                        'subject': subj(p)},
    'DocumentReference': lambda rid, p: {'status': 'current', 'subject': subj(p), 'content': [
        {'attachment': {'contentType': 'text/plain', 'data': 'c2VjcmV0'}}]},
    'CarePlan': lambda rid, p: {'status': 'active', 'intent': 'plan', 'subject': subj(p)},
    'Coverage': lambda rid, p: {'status': 'active', 'beneficiary': subj(p),
                                'payor': [{'reference': 'Organization/org1'}]},
    'Claim': lambda rid, p: {'status': 'active', 'type': {'text': 'x'}, 'use': 'claim',
                             'patient': subj(p), 'created': '2024-01-01',
                             'provider': {'reference': 'Organization/org1'},
                             'priority': {'text': 'normal'},
                             'insurance': [{'sequence': 1, 'focal': True,
                                            'coverage': {'reference': 'Coverage/cov-' + p}}]},
}
TYPES = list(BUILD)


def resource(t, rid, pid):
    r = {'resourceType': t, 'id': rid, 'identifier': ident(rid)}
    r.update(BUILD[t](rid, pid))
    return r


def put(res, c=None):
    r = (c or admin).put('/fhir/%s/%s' % (res['resourceType'], res['id']), json=res)
    expect_status(r, 200, 201)
    return r


def rid(t, pid):
    return '%s-%s' % (t.lower(), pid)


def tok(name, scope, *extra):
    _, out, _ = srv.ehr('token', '--user', name, '--scope', scope, *extra)
    return Client(srv, token=out.strip().splitlines()[-1])


def setup():
    put({'resourceType': 'Organization', 'id': 'org1', 'name': 'Insurer'})
    for pid in ('pa', 'pb', 'pc'):
        put({'resourceType': 'Patient', 'id': pid, 'identifier': ident('patient-' + pid),
             'name': [{'family': 'Family-' + pid}]})
        for t in TYPES:
            put(resource(t, rid(t, pid), pid))
        # a second version, so that vread and history have something to show
        put(resource('Observation', rid('Observation', pid), pid))
    # a resource moved from pb to pa: its first version stays pb's
    put(resource('Observation', 'moved', 'pb'))
    put(resource('Observation', 'moved', 'pa'))
    pw = 'Secret-' + os.urandom(6).hex()
    for name, role, pts in (('pat-a', 'patient', ['pa']), ('proxy-ac', 'patient', ['pa', 'pc']),
                            ('dr-a', 'physician', ['pa']), ('dr-b', 'physician', ['pb']),
                            ('nurse-a', 'nurse', ['pa']), ('desk', 'front-desk', [])):
        args = ['user', 'add', '--username', name, '--password', pw, '--role', role]
        for p in pts:
            args += ['--patient', 'Patient/' + p]
        srv.ehr(*args)


setup()

# who, their token, the patients whose charts they may see, and whether they may write
SUBJECTS = [
    ('patient pat-a (user/*.rs)', tok('pat-a', 'user/*.rs'), {'pa'}, False),
    ('patient app pat-a (patient/*.rs)', tok('pat-a', 'patient/*.rs'), {'pa'}, False),
    ('proxy of pa and pc (user/*.rs)', tok('proxy-ac', 'user/*.rs'), {'pa', 'pc'}, False),
    ('proxy app for pc (patient/*.rs)', tok('proxy-ac', 'patient/*.rs', '--patient', 'Patient/pc'),
     {'pc'}, False),
    ('physician dr-a, panel pa (user/*.cruds)', tok('dr-a', 'user/*.cruds'), {'pa'}, True),
    ('physician dr-a, app launched for pa (patient/*.cruds)',
     tok('dr-a', 'patient/*.cruds', '--patient', 'Patient/pa'), {'pa'}, True),
    ('nurse-a, panel pa (user/*.cruds)', tok('nurse-a', 'user/*.cruds'), {'pa'}, True),
]
ALL = {'pa', 'pb', 'pc'}


def owner(res):
    """The patient a test resource belongs to, from its id or subject."""
    if res.get('resourceType') == 'Patient':
        return res['id']
    for k in ('subject', 'patient', 'beneficiary'):
        ref = (res.get(k) or {}).get('reference', '')
        if ref.startswith('Patient/'):
            return ref[8:]
    return None


def not_known(r, t, i):
    """Exactly what a missing resource answers."""
    case(r.status == 404, '%s/%s answered %d, not 404' % (t, i, r.status))
    oo = r.json or {}
    msgs = [x.get('diagnostics', '') for x in oo.get('issue', [])]
    case(any(('%s/%s' % (t, i)) in m and ('not known' in m or 'no version' in m) for m in msgs),
         '%s/%s: the 404 does not read like a missing resource: %r' % (t, i, msgs))
    case(b'Family-' not in r.content() and b'c2VjcmV0' not in r.content(), 'data in a 404')


def denied(r, what, allowed=(403,)):
    case(r.status in allowed, '%s answered %d, not %s' % (what, r.status, allowed))
    case(b'Family-' not in r.content() and b'c2VjcmV0' not in r.content(), 'data in %s' % what)


def entries(r):
    expect_status(r, 200)
    return [e['resource'] for e in bundle_entries(r.json) if 'resource' in e]


def only(rs, sees, what):
    for res in rs:
        o = owner(res)
        case(o is None or o in sees, '%s returned %s/%s of %s' % (what, res.get('resourceType'),
                                                                  res.get('id'), o))


def clinician_lookup(name, t):
    """Clinicians (user/ scopes) may look up any Patient's demographics."""
    return t == 'Patient' and ('dr-' in name or 'nurse' in name) and 'patient/' not in name


def reads(name, c, sees):
    for t in TYPES + ['Patient']:
        own = c.get('/fhir/%s/%s' % (t, sorted(sees)[0] if t == 'Patient'
                                     else rid(t, sorted(sees)[0])))
        if own.status == 403:
            # the role or scope has no access to the type: the same 403 for
            # everyone's resources, so nothing is told apart
            for pid in ALL - sees:
                denied(c.get('/fhir/%s/%s' % (t, pid if t == 'Patient' else rid(t, pid))),
                       '%s: read %s' % (name, t))
            continue
        for pid in ALL:
            i = pid if t == 'Patient' else rid(t, pid)
            r = c.get('/fhir/%s/%s' % (t, i))
            if pid in sees:
                case(r.status == 200, '%s: own %s/%s answered %d' % (name, t, i, r.status))
                continue
            if clinician_lookup(name, t):
                # clinicians may look up any patient's demographics (not the chart)
                case(r.status == 200, '%s: Patient lookup %d' % (name, r.status))
                continue
            not_known(r, t, i)
            not_known(c.get('/fhir/%s/%s/_history/1' % (t, i)), t, i)
            not_known(c.get('/fhir/%s/%s/_history' % (t, i)), t, i)
        # a resource that does not exist answers the same way
        not_known(c.get('/fhir/%s/nonexistent-%s' % (t, t.lower())), t, 'nonexistent-' + t.lower())
    # the old version of a resource moved into pa's compartment stayed pb's
    if 'pa' in sees:
        case(c.get('/fhir/Observation/moved/_history/2').status == 200, 'own version of moved')
        not_known(c.get('/fhir/Observation/moved/_history/1'), 'Observation', 'moved')
        h = entries(c.get('/fhir/Observation/moved/_history'))
        case([x['meta']['versionId'] for x in h] == ['2'], '%s: history of moved: %r'
             % (name, [x['meta']['versionId'] for x in h]))


def searches(name, c, sees):
    for t in TYPES + ['Patient']:
        if clinician_lookup(name, t):
            continue
        r = c.get('/fhir/%s?_count=100' % t)
        if r.status == 403:
            denied(r, '%s: search %s' % (name, t))
            denied(c.get('/fhir/%s/_history' % t), '%s: %s/_history' % (name, t))
            continue
        rs = entries(r)
        only(rs, sees, '%s: GET %s' % (name, t))
        got = {owner(x) for x in rs}
        case(got <= sees, '%s: %s search owners %r' % (name, t, got))
        for pid in ALL - sees:
            i = pid if t == 'Patient' else rid(t, pid)
            q = ['_id=' + i, 'identifier=%s|%s' % (SYS, 'patient-' + pid if t == 'Patient' else i),
                 '_id=%s&_include=*&_revinclude=*' % i,
                 '_has:Observation:subject:_id=%s' % rid('Observation', pid),
                 '_id=%s,%s' % (i, rid(t, sorted(sees)[0]) if t != 'Patient' else sorted(sees)[0]),
                 '_id=%s&_summary=count' % i, '_id=%s&_total=accurate' % i]
            for qs in q:
                r = c.get('/fhir/%s?%s' % (t, qs))
                rs = entries(r)
                only(rs, sees, '%s: %s?%s' % (name, t, qs))
                case(all(x.get('id') != i for x in rs), '%s: %s?%s found it' % (name, t, qs))
                if 'summary=count' in qs:
                    case(r.json.get('total') == 0, '%s: count of %s?%s is %r' % (
                        name, t, qs, r.json.get('total')))
            r = c.post('/fhir/%s/_search' % t, body='_id=' + i,
                       content_type='application/x-www-form-urlencoded')
            case(all(x.get('id') != i for x in entries(r)), '%s: POST _search' % name)
        # type history
        rs = entries(c.get('/fhir/%s/_history?_count=500' % t))
        only(rs, sees, '%s: %s/_history' % (name, t))
    # system history
    r = c.get('/fhir/_history?_count=1000')
    if r.status == 200:
        rs = [x for x in entries(r) if not clinician_lookup(name, x.get('resourceType'))]
        only(rs, sees, '%s: system _history' % name)
        case(not any(x.get('id') == 'moved' and x['meta']['versionId'] == '1' for x in rs),
             '%s: system history shows moved v1' % name)
    else:
        denied(r, '%s: system _history' % name, (403,))


def writes(name, c, sees, may_write):
    for t in TYPES:
        for pid in ALL - sees:
            i = rid(t, pid)
            before = admin.get('/fhir/%s/%s' % (t, i))
            expect_status(before, 200)
            v0 = before.json['meta']['versionId']
            # overwrite, keeping the owner or moving it into one's own compartment
            for target in (pid, sorted(sees)[0]):
                r = c.put('/fhir/%s/%s' % (t, i), json=resource(t, i, target))
                denied(r, '%s: PUT %s/%s' % (name, t, i))
            r = c.patch('/fhir/%s/%s' % (t, i), [{'op': 'add', 'path': '/identifier/-',
                                                  'value': {'value': 'x'}}])
            if r.status == 404:
                not_known(r, t, i)     # a writer: as if it did not exist
            else:
                denied(r, '%s: PATCH %s/%s' % (name, t, i))   # the role or scope says no
            r = c.delete('/fhir/%s/%s' % (t, i))
            denied(r, '%s: DELETE %s/%s' % (name, t, i), (200, 204, 403) if may_write else (403,))
            # conditional: the other patient's resource does not match
            q = urllib.parse.quote('%s|%s' % (SYS, i))
            r = c.put('/fhir/%s?identifier=%s' % (t, q), json=resource(t, i, pid))
            denied(r, '%s: conditional PUT %s' % (name, t), (403,))
            r = c.delete('/fhir/%s?identifier=%s' % (t, q))
            denied(r, '%s: conditional DELETE %s' % (name, t),
                   (200, 204, 403) if may_write else (403,))
            r = c.post('/fhir/%s' % t, json={k: v for k, v in resource(t, i, pid).items()
                                             if k != 'id'},
                       headers={'If-None-Exist': 'identifier=%s|%s' % (SYS, i)})
            denied(r, '%s: conditional create %s' % (name, t))
            after = admin.get('/fhir/%s/%s' % (t, i))
            case(after.status == 200 and after.json['meta']['versionId'] == v0,
                 '%s: %s/%s changed (%d, version %s)' % (name, t, i, after.status,
                                                         (after.json or {}).get('meta')))
        # new resources in another compartment
        for pid in ALL - sees:
            r = c.post('/fhir/%s' % t, json={k: v for k, v in resource(t, 'x', pid).items()
                                             if k != 'id'})
            denied(r, '%s: POST %s for %s' % (name, t, pid))


def operations(name, c, sees):
    for pid in ALL - sees:
        for path in ('/fhir/Patient/%s/$everything' % pid, '/fhir/Patient/%s/$export' % pid,
                     '/fhir/$export', '/fhir/Patient/$export', '/fhir/Group/g1/$export'):
            r = c.get(path)
            case(r.status in (202, 401, 403, 404, 501) or (r.status == 200 and not any(
                owner(x) not in sees and owner(x) for x in entries(r))),
                '%s: GET %s answered %d' % (name, path, r.status))
            case(b'Family-' + pid.encode() not in r.content(), '%s: %s leaks' % (name, path))
        # a transaction or batch reaching into another compartment
        bundle = {'resourceType': 'Bundle', 'type': 'batch', 'entry': [
            {'request': {'method': 'GET', 'url': 'Observation/' + rid('Observation', pid)}},
            {'request': {'method': 'GET', 'url': 'Condition?_id=' + rid('Condition', pid)}},
            {'request': {'method': 'DELETE', 'url': 'Observation/' + rid('Observation', pid)}},
            {'request': {'method': 'PUT', 'url': 'Condition/' + rid('Condition', pid)},
             'resource': resource('Condition', rid('Condition', pid), pid)},
        ]}
        for kind in ('batch', 'transaction'):
            bundle['type'] = kind
            r = c.post('/fhir', json=bundle)
            case(b'Family-' not in r.content() and b'hypertension' not in r.content(),
                 '%s: %s leaks' % (name, kind))
            if r.status == 200:
                for e in (r.json or {}).get('entry', []):
                    st = e.get('response', {}).get('status', '')
                    case(not st.startswith('2') or 'resource' not in e or
                         owner(e['resource']) in sees or owner(e['resource']) is None,
                         '%s: %s entry %r' % (name, kind, st))
            else:
                case(r.status in (400, 403, 404, 422, 501), '%s: %s answered %d'
                     % (name, kind, r.status))
        after = admin.get('/fhir/Observation/' + rid('Observation', pid))
        case(after.status == 200, '%s: a bundle deleted %s\'s Observation' % (name, pid))


for name, c, sees, may_write in SUBJECTS:
    test_expect_success('%s: reads and vreads of other patients\' resources answer 404 like missing '
                        'ones' % name, reads, name, c, sees)
    test_expect_success('%s: searches (by id, identifier, _include, _revinclude, _has, POST) and '
                        'history at every level show only their patients' % name,
                        searches, name, c, sees)
    test_expect_success('%s: no write, patch, delete or conditional operation reaches another '
                        'patient' % name, writes, name, c, sees, may_write)
    test_expect_success('%s: $everything, $export, batch and transaction entries stay inside'
                        % name, operations, name, c, sees)


def t_clinicians_differ():
    # dr-b's panel is pb: the mirror image of dr-a
    c = tok('dr-b', 'user/*.cruds')
    case(c.get('/fhir/Observation/' + rid('Observation', 'pb')).status == 200, 'dr-b own')
    not_known(c.get('/fhir/Observation/' + rid('Observation', 'pa')), 'Observation',
              rid('Observation', 'pa'))
    case(c.get('/fhir/Patient/pa').status == 200, 'dr-b looks pa up (demographics)')
    # the front desk: demographics and scheduling, no chart at all
    d = tok('desk', 'user/*.cruds')
    for t in TYPES:
        r = d.get('/fhir/%s/%s' % (t, rid(t, 'pa')))
        want = 200 if t in ('Encounter', 'Coverage') else 403
        if t == 'Claim':
            want = 200
        case(r.status == want, 'desk %s answered %d, want %d' % (t, r.status, want))
    case(d.get('/fhir/Patient/pb').status == 200, 'desk reads any Patient')


test_expect_success('two physicians see different charts; the front desk sees no chart',
                    t_clinicians_differ)


def t_denials_audited():
    _, out, _ = srv.ehr('audit', 'report', '--user', 'pat-a')
    lines = out.splitlines()
    for t in TYPES:
        i = rid(t, 'pb')
        hit = [l for l in lines if (' read denied ' in l or ' vread denied ' in l)
               and ('%s/%s' % (t, i)) in l]
        case(hit, 'no audit record of pat-a reading %s/%s' % (t, i))
    writes_denied = [l for l in lines if ' denied ' in l and (' update ' in l or ' delete ' in l or
                                                              ' create ' in l or ' patch ' in l)]
    case(len(writes_denied) >= len(TYPES) * 2, 'denied writes audited: %d' % len(writes_denied))
    rc, out, _ = srv.ehr('audit', 'verify', check_rc=False)
    case(rc == 0, 'the chain is intact after the matrix: %s' % out)


test_expect_success('every denied read and write of the matrix is in the audit log', t_denials_audited)

note('BOLA cases checked: %d' % CASES[0])
test_done()
