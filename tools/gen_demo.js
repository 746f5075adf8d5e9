#!/usr/bin/env node
// GENERATOR: the demo data that `ehr demo` (and `make run`) loads, written
// for ehr: Emma Larsen, 35, whose family doctor follows her rising
// cholesterol over eight yearly visits, and who reaches the emergency room
// with chest pain in November 2026. Fictional people and places.
// Usage: gen_demo.js OUT.c   (emits the resources as one JSON array in a C string)
'use strict';
const fs = require('fs');
const out = process.argv[2];

const LOINC = 'http://loinc.org';
const SCT = 'http://snomed.info/sct';
const UCUM = 'http://unitsofmeasure.org';
const OBSCAT = 'http://terminology.hl7.org/CodeSystem/observation-category';
const INTERP = 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation';
const MRN = 'urn:oid:2.16.840.1.113883.3.9999.1';
const R = [];

R.push({ resourceType: 'Organization', id: 'org-riverside', active: true,
  name: 'Riverside Family Practice',
  telecom: [{ system: 'phone', value: '+1-555-0100', use: 'work' }],
  address: [{ line: ['12 Mill Road'], city: 'Riverside', state: 'OR', postalCode: '97000', country: 'US' }] });
R.push({ resourceType: 'Organization', id: 'org-stmary', active: true,
  name: "St. Mary's Hospital Emergency Department",
  address: [{ line: ['400 Harbor Avenue'], city: 'Riverside', state: 'OR', postalCode: '97001', country: 'US' }] });
R.push({ resourceType: 'Practitioner', id: 'pr-okafor', active: true,
  name: [{ family: 'Okafor', given: ['Grace'], prefix: ['Dr.'] }],
  identifier: [{ system: 'http://hl7.org/fhir/sid/us-npi', value: '1234567893' }] });
R.push({ resourceType: 'Practitioner', id: 'pr-lindqvist', active: true,
  name: [{ family: 'Lindqvist', given: ['Erik'], prefix: ['Dr.'] }],
  identifier: [{ system: 'http://hl7.org/fhir/sid/us-npi', value: '1987654325' }] });
R.push({ resourceType: 'Patient', id: 'emma', active: true,
  identifier: [{ use: 'usual', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] },
    system: MRN, value: 'MRN-100234' }],
  name: [{ use: 'official', family: 'Larsen', given: ['Emma', 'Kristine'] }],
  telecom: [{ system: 'phone', value: '+1-555-0142', use: 'mobile' }, { system: 'email', value: 'emma.larsen@example.org' }],
  gender: 'female', birthDate: '1991-03-14',
  address: [{ use: 'home', line: ['88 Alder Street'], city: 'Riverside', state: 'OR', postalCode: '97002', country: 'US' }],
  communication: [{ language: { coding: [{ system: 'urn:ietf:bcp:47', code: 'en-US' }] }, preferred: true }],
  generalPractitioner: [{ reference: 'Practitioner/pr-okafor' }],
  managingOrganization: { reference: 'Organization/org-riverside' } });

const subject = { reference: 'Patient/emma', display: 'Emma Larsen' };
// Yearly check-ups; total cholesterol climbs until the statin starts in 2024.
const visits = [
  [2019, 184, 112, 58, 118, 76, 61.0], [2020, 191, 119, 57, 120, 78, 62.4],
  [2021, 203, 128, 55, 122, 79, 63.9], [2022, 221, 145, 54, 126, 81, 65.2],
  [2023, 236, 158, 52, 129, 83, 66.8], [2024, 248, 169, 51, 131, 84, 67.5],
  [2025, 229, 149, 53, 127, 82, 66.9], [2026, 214, 136, 55, 124, 80, 66.1],
];
function obs(id, date, enc, cat, code, display, value, unit, ucum, range, extra) {
  const o = { resourceType: 'Observation', id, status: 'final',
    category: [{ coding: [{ system: OBSCAT, code: cat }] }],
    code: { coding: [{ system: LOINC, code, display }], text: display },
    subject, encounter: { reference: 'Encounter/' + enc }, effectiveDateTime: date };
  if (value !== undefined)
    o.valueQuantity = { value, unit, system: UCUM, code: ucum };
  if (range) {
    o.referenceRange = [range];
    const lo = range.low ? range.low.value : -Infinity, hi = range.high ? range.high.value : Infinity;
    const flag = value > hi ? 'H' : value < lo ? 'L' : 'N';
    o.interpretation = [{ coding: [{ system: INTERP, code: flag }] }];
  }
  return Object.assign(o, extra || {});
}
const mgdl = (v) => ({ value: v, unit: 'mg/dL', system: UCUM, code: 'mg/dL' });
for (const [y, chol, ldl, hdl, sys, dia, kg] of visits) {
  const enc = 'emma-visit-' + y, date = `${y}-03-${y === 2026 ? '16' : '18'}T09:30:00-07:00`;
  R.push({ resourceType: 'Encounter', id: enc, status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB', display: 'ambulatory' },
    type: [{ coding: [{ system: SCT, code: '185349003', display: 'Encounter for check up' }] }],
    subject, participant: [{ individual: { reference: 'Practitioner/pr-okafor' } }],
    period: { start: date, end: `${y}-03-${y === 2026 ? '16' : '18'}T10:00:00-07:00` },
    serviceProvider: { reference: 'Organization/org-riverside' } });
  R.push(obs(`emma-chol-${y}`, date, enc, 'laboratory', '2093-3', 'Cholesterol [Mass/volume] in Serum or Plasma',
    chol, 'mg/dL', 'mg/dL', { high: mgdl(200) }));
  R.push(obs(`emma-ldl-${y}`, date, enc, 'laboratory', '18262-6', 'Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay',
    ldl, 'mg/dL', 'mg/dL', { high: mgdl(130) }));
  R.push(obs(`emma-hdl-${y}`, date, enc, 'laboratory', '2085-9', 'Cholesterol in HDL [Mass/volume] in Serum or Plasma',
    hdl, 'mg/dL', 'mg/dL', { low: mgdl(40) }));
  R.push(obs(`emma-weight-${y}`, date, enc, 'vital-signs', '29463-7', 'Body weight', kg, 'kg', 'kg'));
  R.push(obs(`emma-bp-${y}`, date, enc, 'vital-signs', '85354-9', 'Blood pressure panel', undefined, null, null, null, {
    component: [
      { code: { coding: [{ system: LOINC, code: '8480-6', display: 'Systolic blood pressure' }] },
        valueQuantity: { value: sys, unit: 'mmHg', system: UCUM, code: 'mm[Hg]' } },
      { code: { coding: [{ system: LOINC, code: '8462-4', display: 'Diastolic blood pressure' }] },
        valueQuantity: { value: dia, unit: 'mmHg', system: UCUM, code: 'mm[Hg]' } }] }));
}
R.push({ resourceType: 'Condition', id: 'emma-hyperlipidemia',
  clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
  verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' }] },
  category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-category', code: 'problem-list-item' }] }],
  code: { coding: [{ system: SCT, code: '55822004', display: 'Hyperlipidemia' },
    { system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'E78.5', display: 'Hyperlipidemia, unspecified' }], text: 'Hyperlipidemia' },
  subject, onsetDateTime: '2022-03-18', recordedDate: '2022-03-18',
  recorder: { reference: 'Practitioner/pr-okafor' } });
R.push({ resourceType: 'AllergyIntolerance', id: 'emma-penicillin',
  clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'active' }] },
  verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-verification', code: 'confirmed' }] },
  type: 'allergy', category: ['medication'], criticality: 'high',
  code: { coding: [{ system: SCT, code: '764146007', display: 'Penicillin' }], text: 'Penicillin' },
  patient: subject, recordedDate: '2019-03-18',
  reaction: [{ manifestation: [{ coding: [{ system: SCT, code: '247472004', display: 'Hives' }] }], severity: 'moderate' }] });
R.push({ resourceType: 'MedicationRequest', id: 'emma-atorvastatin', status: 'active', intent: 'order',
  medicationCodeableConcept: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '617312',
    display: 'atorvastatin 20 MG Oral Tablet' }], text: 'Atorvastatin 20 mg tablet' },
  subject, encounter: { reference: 'Encounter/emma-visit-2024' }, authoredOn: '2024-03-18',
  requester: { reference: 'Practitioner/pr-okafor' },
  reasonReference: [{ reference: 'Condition/emma-hyperlipidemia' }],
  dosageInstruction: [{ text: 'Take one tablet by mouth every evening',
    timing: { repeat: { frequency: 1, period: 1, periodUnit: 'd' } },
    doseAndRate: [{ doseQuantity: { value: 1, unit: 'tablet', system: UCUM, code: '{tbl}' } }] }],
  dispenseRequest: { numberOfRepeatsAllowed: 3, quantity: { value: 90, unit: 'tablet', system: UCUM, code: '{tbl}' } } });
R.push({ resourceType: 'Immunization', id: 'emma-flu-2025', status: 'completed',
  vaccineCode: { coding: [{ system: 'http://hl7.org/fhir/sid/cvx', code: '158', display: 'influenza, injectable, quadrivalent' }] },
  patient: subject, occurrenceDateTime: '2025-10-02', primarySource: true,
  performer: [{ actor: { reference: 'Practitioner/pr-okafor' } }] });

// The emergency visit, 20 November 2026.
const er = 'emma-er-2026';
R.push({ resourceType: 'Encounter', id: er, status: 'finished',
  class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'EMER', display: 'emergency' },
  type: [{ coding: [{ system: SCT, code: '50849002', display: 'Emergency room admission' }] }],
  priority: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActPriority', code: 'EM' }] },
  subject, participant: [{ individual: { reference: 'Practitioner/pr-lindqvist' } }],
  period: { start: '2026-11-20T22:14:00-08:00', end: '2026-11-21T03:40:00-08:00' },
  reasonCode: [{ coding: [{ system: SCT, code: '29857009', display: 'Chest pain' }], text: 'Chest pain' }],
  serviceProvider: { reference: 'Organization/org-stmary' } });
R.push({ resourceType: 'Condition', id: 'emma-chest-pain',
  clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'resolved' }] },
  verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' }] },
  category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-category', code: 'encounter-diagnosis' }] }],
  code: { coding: [{ system: SCT, code: '29857009', display: 'Chest pain' }], text: 'Atypical chest pain' },
  subject, encounter: { reference: 'Encounter/' + er }, onsetDateTime: '2026-11-20T20:30:00-08:00',
  abatementDateTime: '2026-11-21T03:40:00-08:00', recorder: { reference: 'Practitioner/pr-lindqvist' } });
const erTime = '2026-11-20T22:40:00-08:00';
R.push(obs('emma-troponin-2026', erTime, er, 'laboratory', '10839-9', 'Troponin I.cardiac [Mass/volume] in Serum or Plasma',
  0.01, 'ng/mL', 'ng/mL', { high: { value: 0.04, unit: 'ng/mL', system: UCUM, code: 'ng/mL' } }));
R.push(obs('emma-troponin-2026b', '2026-11-21T01:40:00-08:00', er, 'laboratory', '10839-9',
  'Troponin I.cardiac [Mass/volume] in Serum or Plasma', 0.01, 'ng/mL', 'ng/mL',
  { high: { value: 0.04, unit: 'ng/mL', system: UCUM, code: 'ng/mL' } }));
R.push(obs('emma-er-bp', erTime, er, 'vital-signs', '85354-9', 'Blood pressure panel', undefined, null, null, null, {
  component: [
    { code: { coding: [{ system: LOINC, code: '8480-6', display: 'Systolic blood pressure' }] },
      valueQuantity: { value: 138, unit: 'mmHg', system: UCUM, code: 'mm[Hg]' } },
    { code: { coding: [{ system: LOINC, code: '8462-4', display: 'Diastolic blood pressure' }] },
      valueQuantity: { value: 88, unit: 'mmHg', system: UCUM, code: 'mm[Hg]' } }] }));
R.push(obs('emma-er-hr', erTime, er, 'vital-signs', '8867-4', 'Heart rate', 96, 'beats/minute', '/min'));

const json = JSON.stringify(R);
let c = '/* GENERATED by tools/gen_demo.js: the demo patients. Do not edit. */\n' +
  '#include <stddef.h>\n\nconst char ehr_demo_json[] =\n';
for (let i = 0; i < json.length; i += 100)
  c += '    ' + JSON.stringify(json.slice(i, i + 100)) + '\n';
c += '    ;\nconst size_t ehr_demo_json_len = sizeof ehr_demo_json - 1;\n';
if (out) fs.writeFileSync(out, c);
else process.stdout.write(json);
