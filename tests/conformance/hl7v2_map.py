#!/usr/bin/env python3
"""
hl7v2_map.py - the v2 -> FHIR maps against every sample message in
../shared/data/hl7v2/converter-samples/messages of a mapped type (ADT A01
A02 A03 A04 A08 A11 A13 A28 A31 A40, ORU^R01, VXU^V04, SIU S12-S15).

Each message goes through `ehr hl7 map` (no database); the Bundle it prints
is checked field by field against values read here from the raw message,
with this script's own splitting (HL7 v2.5.1 chapter 2), and against the
HL7 v2-to-FHIR IG's concept maps read from their CSV files. The converter's
expected output in the same folder is not used.

A field is compared only when the raw text has no escape sequence in it
(escapes are the parser's business, tested in tests/unit/test_hl7v2.c).

Prints passed / failed / skipped per message type and in total; exit 1 on
any failure or when fewer than --min-pass messages pass, 77 when the data
is absent.

usage: hl7v2_map.py EHR_BIN [--min-pass N] [--verbose] [DATA_DIR]
"""
import csv
import json
import os
import subprocess
import sys

args = sys.argv[1:]
if not args:
    print(__doc__)
    sys.exit(2)
EHR = args.pop(0)
MIN_PASS = 0
VERBOSE = False
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
DATA = os.path.join(ROOT, '..', 'shared', 'data', 'hl7v2')
while args:
    a = args.pop(0)
    if a == '--min-pass':
        MIN_PASS = int(args.pop(0))
    elif a == '--verbose':
        VERBOSE = True
    else:
        DATA = a
SAMPLES = os.path.join(DATA, 'converter-samples', 'messages', 'Hl7v2')
MAPS = os.path.join(DATA, 'v2-to-fhir-mappings', 'mappings', 'codesystems')
if not os.path.isdir(SAMPLES) or not os.path.isdir(MAPS):
    print('SKIP: %s is absent (see ../shared/data/README.md)' % DATA)
    sys.exit(77)


def concept_map(name):
    """v2 code -> FHIR code from an IG concept map CSV (rows after the two headers)."""
    out = {}
    with open(os.path.join(MAPS, 'HL7 Concept Map_ %s - Sheet1.csv' % name), newline='') as f:
        rows = list(csv.reader(f))
    hdr = [h.strip() for h in rows[1]]
    code_col = hdr.index('Code', 3)
    for r in rows[2:]:
        if len(r) > code_col and r[0].strip() and r[code_col].strip() and not r[3].strip():
            out[r[0].strip()] = r[code_col].strip()
    return out


SEX = concept_map('AdministrativeSex')
CLASS = concept_map('PatientClass[EncounterClass]')
EVENT_STATUS = concept_map('Event[EncounterStatus]')
INTERP = concept_map('InterpretationCodes')
OBS_STATUS = concept_map('ObservationResultStatusCodesInterpretation')
IMM_STATUS = concept_map('CompletionStatus')


class Msg:
    """The raw message, split here: segments > fields > repetitions > components."""

    def __init__(self, text):
        text = text.lstrip('\ufeff')
        self.segs = [s for s in text.replace('\r\n', '\r').replace('\n', '\r').split('\r') if s]
        msh = self.segs[0]
        self.fs, self.cs, self.rs, self.esc = msh[3], msh[4], msh[5], msh[6]

    def all(self, name):
        out = []
        for s in self.segs:
            if s[:3] == name:
                f = s.split(self.fs)
                if name == 'MSH':
                    f = ['MSH', self.fs] + f[1:]
                out.append(f)
        return out

    def get(self, seg, n, comp=1, rep=1):
        """seg: a list from all(); '' when absent; None when it has an escape."""
        if n >= len(seg):
            return ''
        reps = seg[n].split(self.rs) if n != 2 or seg[0] != 'MSH' else [seg[n]]
        if rep > len(reps):
            return ''
        comps = reps[rep - 1].split(self.cs)
        v = comps[comp - 1] if comp <= len(comps) else ''
        v = v.split('&')[0] if '&' in v and self.esc not in v else v
        return None if self.esc in v else v

    def first(self, name, n, comp=1, rep=1):
        segs = self.all(name)
        return self.get(segs[0], n, comp, rep) if segs else ''


def fhir_date(dtm):
    d = ''.join(ch for ch in dtm[:8] if ch.isdigit())
    return '-'.join(x for x in (d[:4], d[4:6], d[6:8]) if x)


class Check:
    def __init__(self, name):
        self.name = name
        self.problems = []
        self.compared = 0

    def eq(self, got, want, what):
        if want is None:
            return  # escaped in the raw text: not compared here
        self.compared += 1
        if got != want:
            self.problems.append('%s: expected %r, got %r' % (what, want, got))


def resources(bundle, rtype):
    return [e['resource'] for e in bundle['entry']
            if e.get('resource', {}).get('resourceType') == rtype]


def check_patient(m, b, ck):
    pids = m.all('PID')
    pats = resources(b, 'Patient')
    if not pats:
        ck.problems.append('no Patient')
        return
    p = pats[0]
    pid = pids[0]
    ident = m.get(pid, 3, 1)
    values = [i.get('value') for i in p.get('identifier', [])]
    if ident:
        ck.eq(ident in values, True, 'PID-3.1 %r among Patient.identifier' % ident)
    fam = m.get(pid, 5, 1)
    if fam:
        ck.eq(p['name'][0].get('family'), fam, 'PID-5.1 family')
    given = m.get(pid, 5, 2)
    if given:
        ck.eq(given in p['name'][0].get('given', []), True, 'PID-5.2 given')
    dob = m.get(pid, 7, 1)
    if dob:
        ck.eq(p.get('birthDate'), fhir_date(dob), 'PID-7 birthDate')
    sex = m.get(pid, 8, 1)
    if sex is not None:
        ck.eq(p.get('gender'), SEX.get(sex), 'PID-8 gender (IG AdministrativeSex)')


def check_adt(m, b, ck, event):
    check_patient(m, b, ck)
    pv1 = m.all('PV1')
    encs = resources(b, 'Encounter')
    if event in ('A28', 'A31', 'A40'):
        ck.eq(len(encs), 0, 'no Encounter for %s' % event)
        if event == 'A40':
            links = resources(b, 'Patient')[0].get('link', [])
            ck.eq([lk['type'] for lk in links], ['replaces'], 'A40 survivor link')
        return
    ck.eq(len(encs), 1 if pv1 else 0, 'Encounters')
    if not encs:
        return
    e = encs[0]
    ck.eq(e['status'], EVENT_STATUS.get(event, 'unknown'), 'status (IG Event[EncounterStatus])')
    cls = m.get(pv1[0], 2, 1)
    ck.eq(e['class']['code'], CLASS.get(cls, 'U'), 'PV1-2 class (IG PatientClass)')
    start = m.get(pv1[0], 44, 1)
    if start and event != 'A13':
        ck.eq(e.get('period', {}).get('start', '')[:10], fhir_date(start), 'PV1-44 start')
    visit = m.get(pv1[0], 19, 1)
    if visit:
        ck.eq(e['identifier'][0]['value'], visit, 'PV1-19 visit number')
    ck.eq(len(resources(b, 'RelatedPerson')), len(m.all('NK1')), 'RelatedPerson per NK1')
    ck.eq(len(resources(b, 'Coverage')), len(m.all('IN1')), 'Coverage per IN1')


def number(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def check_oru(m, b, ck):
    check_patient(m, b, ck)
    obxs = m.all('OBX')
    obs = resources(b, 'Observation')
    ck.eq(len(obs), len(obxs), 'one Observation per OBX')
    ck.eq(len(resources(b, 'DiagnosticReport')), len(m.all('OBR')), 'one DiagnosticReport per OBR')
    spm_ids = [m.get(x, 2, 1) or 'seg%d' % i for i, x in enumerate(m.all('SPM'))]
    ck.eq(len(resources(b, 'Specimen')), len(set(spm_ids)), 'one Specimen per SPM-2 id')
    for i, (x, o) in enumerate(zip(obxs, obs), 1):
        code = m.get(x, 3, 1)
        if code:
            ck.eq(o['code']['coding'][0]['code'], code, 'OBX %d: OBX-3 code' % i)
        st = m.get(x, 11, 1)
        if st:
            ck.eq(o['status'], OBS_STATUS.get(st, 'unknown'), 'OBX %d: OBX-11 status' % i)
        vt = m.get(x, 2, 1)
        val = m.get(x, 5, 1)
        if vt == 'NM' and val:
            q = o.get('valueQuantity', {})
            ck.eq(number(str(q.get('value'))), number(val), 'OBX %d: OBX-5 value' % i)
            unit = m.get(x, 6, 2) or m.get(x, 6, 1)
            if unit:
                ck.eq(q.get('unit'), unit, 'OBX %d: OBX-6 unit' % i)
        elif vt in ('ST', 'TX', 'FT') and val and len(x[5].split(m.rs)) == 1 and m.cs not in x[5]:
            ck.eq(o.get('valueString'), val, 'OBX %d: OBX-5 text' % i)
        rng = m.get(x, 7, 1)
        if rng:
            ck.eq(o['referenceRange'][0].get('text'), rng, 'OBX %d: OBX-7 range' % i)
            if '-' in rng[1:]:
                lo, hi = rng.split('-', 1) if not rng.startswith('-') else (None, None)
                if lo is not None and number(lo) is not None and number(hi) is not None:
                    ck.eq(number(str(o['referenceRange'][0]['low']['value'])), number(lo),
                          'OBX %d: range low' % i)
                    ck.eq(number(str(o['referenceRange'][0]['high']['value'])), number(hi),
                          'OBX %d: range high' % i)
        flag = m.get(x, 8, 1)
        if flag:
            ck.eq(o['interpretation'][0]['coding'][0]['code'], INTERP.get(flag, flag),
                  'OBX %d: OBX-8 flag (IG InterpretationCodes)' % i)


def check_vxu(m, b, ck):
    check_patient(m, b, ck)
    rxas = m.all('RXA')
    ims = resources(b, 'Immunization')
    ck.eq(len(ims), len(rxas), 'one Immunization per RXA')
    for i, (x, im) in enumerate(zip(rxas, ims), 1):
        ck.eq(im['vaccineCode']['coding'][0]['code'], m.get(x, 5, 1), 'RXA %d: RXA-5 code' % i)
        ck.eq(im['occurrenceDateTime'][:10], fhir_date(m.get(x, 3, 1)), 'RXA %d: RXA-3 date' % i)
        cs = m.get(x, 20, 1)
        ck.eq(im['status'], IMM_STATUS.get(cs, 'completed'), 'RXA %d: RXA-20 status' % i)
        lot = m.get(x, 15, 1)
        if lot:
            ck.eq(im.get('lotNumber'), lot, 'RXA %d: RXA-15 lot' % i)


def check_siu(m, b, ck, event):
    check_patient(m, b, ck)
    aps = resources(b, 'Appointment')
    ck.eq(len(aps), 1, 'one Appointment')
    sch = m.all('SCH')[0]
    key = m.get(sch, 2, 1) or m.get(sch, 1, 1)
    ck.eq(aps[0]['identifier'][0]['value'], key, 'SCH-2 (or SCH-1) identifier')
    if event == 'S15':
        ck.eq(aps[0]['status'], 'cancelled', 'S15 cancels')


MAPPED = {('ADT', e) for e in ('A01', 'A02', 'A03', 'A04', 'A08', 'A11', 'A13', 'A28', 'A31',
                               'A40')}
MAPPED |= {('ORU', 'R01'), ('VXU', 'V04')} | {('SIU', e) for e in ('S12', 'S13', 'S14', 'S15')}

per_type = {}
passed = failed = skipped = 0
for name in sorted(os.listdir(SAMPLES)):
    path = os.path.join(SAMPLES, name)
    text = open(path, encoding='utf-8-sig', errors='replace').read()
    m = Msg(text)
    msh = m.all('MSH')[0]
    typ, ev = m.get(msh, 9, 1), m.get(msh, 9, 2)
    key = '%s^%s' % (typ, ev)
    stats = per_type.setdefault(key, [0, 0, 0, 0])
    if (typ, ev) not in MAPPED:
        stats[2] += 1
        skipped += 1
        continue
    p = subprocess.run([EHR, 'hl7', 'map', path], capture_output=True, text=True, timeout=120)
    ck = Check(name)
    # a required field missing in the raw text (v2.5.1: OBX-3, PID-3, RXA-5)
    # must be refused, naming it, rather than mapped
    missing = [n for seg, f, n in (('OBX', 3, 'OBX-3'), ('PID', 3, 'PID-3'), ('RXA', 5, 'RXA-5'))
               if any(not m.get(x, f, 1) for x in m.all(seg))]
    if missing:
        if p.returncode == 0 or missing[0] not in p.stderr:
            ck.problems.append('%s is empty: expected a refusal naming it, got %r'
                               % (missing[0], p.stderr.strip() or 'a Bundle'))
        else:
            ck.compared += 1
            note_refused = '%s refused: %s empty' % (name, missing[0])
            if VERBOSE:
                print('ok   ' + note_refused)
    elif p.returncode != 0:
        ck.problems.append('ehr hl7 map failed: ' + p.stderr.strip())
    else:
        b = json.loads(p.stdout.splitlines()[0])
        try:
            if typ == 'ADT':
                check_adt(m, b, ck, ev)
            elif typ == 'ORU':
                check_oru(m, b, ck)
            elif typ == 'VXU':
                check_vxu(m, b, ck)
            else:
                check_siu(m, b, ck, ev)
        except (KeyError, IndexError, TypeError) as e:
            ck.problems.append('missing element: %r' % (e,))
    stats[3] += ck.compared
    if ck.problems:
        failed += 1
        stats[1] += 1
        print('FAIL %s (%s)' % (name, key))
        for pr in ck.problems:
            print('     ' + pr)
    else:
        passed += 1
        stats[0] += 1
        if VERBOSE:
            print('ok   %s (%s): %d fields compared' % (name, key, ck.compared))

print('%-10s %6s %6s %7s %8s' % ('type', 'passed', 'failed', 'skipped', 'fields'))
for k in sorted(per_type):
    s = per_type[k]
    if s[0] or s[1]:
        print('%-10s %6d %6d %7d %8d' % (k, s[0], s[1], s[2], s[3]))
print('total: %d passed, %d failed, %d skipped (types without a map: %s)'
      % (passed, failed, skipped, ', '.join(sorted(k for k, s in per_type.items()
                                                    if not s[0] and not s[1]))))
sys.exit(1 if failed or passed < MIN_PASS else 0)
