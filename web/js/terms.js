// terms.js - the code lists the forms offer as typeahead, before the codes
// found in the data are added: well-known codes of the standard systems
// (LOINC, UCUM, SNOMED CT, RxNorm, CVX, CDC race and ethnicity). Value sets
// of the FHIR definitions are in valuesets.js (generated).
// Free text is always allowed when no code fits.

export const SYS = {
  loinc: 'http://loinc.org',
  sct: 'http://snomed.info/sct',
  ucum: 'http://unitsofmeasure.org',
  rxnorm: 'http://www.nlm.nih.gov/research/umls/rxnorm',
  cvx: 'http://hl7.org/fhir/sid/cvx',
  race: 'urn:oid:2.16.840.1.113883.6.238',
  bcp47: 'urn:ietf:bcp:47',
  nullFlavor: 'http://terminology.hl7.org/CodeSystem/v3-NullFlavor',
  obsCat: 'http://terminology.hl7.org/CodeSystem/observation-category',
};

// [LOINC, name, UCUM unit, field name]
export const VITALS = [
  ['8480-6', 'Systolic blood pressure', 'mm[Hg]', 'sys'],
  ['8462-4', 'Diastolic blood pressure', 'mm[Hg]', 'dia'],
  ['8867-4', 'Heart rate', '/min', 'hr'],
  ['9279-1', 'Respiratory rate', '/min', 'rr'],
  ['8310-5', 'Body temperature', 'Cel', 'temp'],
  ['59408-5', 'Oxygen saturation in Arterial blood by Pulse oximetry', '%', 'spo2'],
  ['29463-7', 'Body weight', 'kg', 'weight'],
  ['8302-2', 'Body height', 'cm', 'height'],
  ['39156-5', 'Body mass index (BMI) [Ratio]', 'kg/m2', 'bmi'],
];

export const PROBLEMS = [
  ['38341003', 'Hypertensive disorder, systemic arterial'],
  ['44054006', 'Diabetes mellitus type 2'],
  ['55822004', 'Hyperlipidemia'],
  ['195967001', 'Asthma'],
  ['13645005', 'Chronic obstructive lung disease'],
  ['35489007', 'Depressive disorder'],
  ['197480006', 'Anxiety disorder'],
  ['49436004', 'Atrial fibrillation'],
  ['414545008', 'Ischemic heart disease'],
  ['709044004', 'Chronic kidney disease'],
  ['40930008', 'Hypothyroidism'],
  ['73430006', 'Sleep apnea'],
  ['69896004', 'Rheumatoid arthritis'],
  ['29857009', 'Chest pain'],
];

export const ALLERGENS = [
  ['764146007', 'Penicillin'],
  ['372687004', 'Amoxicillin'],
  ['387458008', 'Aspirin'],
  ['387207008', 'Ibuprofen'],
  ['111088007', 'Latex'],
];

export const MEDS = [
  ['617312', 'atorvastatin 20 MG Oral Tablet'],
  ['314076', 'lisinopril 10 MG Oral Tablet'],
  ['197361', 'amlodipine 5 MG Oral Tablet'],
  ['860975', '24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet'],
  ['313782', 'acetaminophen 325 MG Oral Tablet'],
  ['310965', 'ibuprofen 200 MG Oral Tablet'],
];

export const LABS = [
  ['2093-3', 'Cholesterol [Mass/volume] in Serum or Plasma'],
  ['2085-9', 'Cholesterol in HDL [Mass/volume] in Serum or Plasma'],
  ['18262-6', 'Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay'],
  ['2571-8', 'Triglyceride [Mass/volume] in Serum or Plasma'],
  ['57698-3', 'Lipid panel with direct LDL - Serum or Plasma'],
  ['4548-4', 'Hemoglobin A1c/Hemoglobin.total in Blood'],
  ['2345-7', 'Glucose [Mass/volume] in Serum or Plasma'],
  ['2160-0', 'Creatinine [Mass/volume] in Serum or Plasma'],
  ['3016-3', 'Thyrotropin [Units/volume] in Serum or Plasma'],
  ['58410-2', 'CBC panel - Blood by Automated count'],
  ['24323-8', 'Comprehensive metabolic 2000 panel - Serum or Plasma'],
  ['10839-9', 'Troponin I.cardiac [Mass/volume] in Serum or Plasma'],
];

export const VACCINES = [
  ['158', 'influenza, injectable, quadrivalent'],
  ['150', 'Influenza, injectable, quadrivalent, preservative free'],
  ['140', 'Influenza, seasonal, injectable, preservative free'],
  ['208', 'COVID-19, mRNA, LNP-S, PF, 30 mcg/0.3 mL dose'],
  ['115', 'Tdap'],
  ['113', 'Td (adult) preservative free'],
  ['133', 'Pneumococcal conjugate PCV 13'],
  ['33', 'pneumococcal polysaccharide PPV23'],
  ['187', 'zoster vaccine recombinant'],
  ['43', 'Hep B, adult'],
  ['62', 'HPV, quadrivalent'],
  ['03', 'MMR'],
  ['21', 'varicella'],
];

export const ROUTES = [
  ['26643006', 'Oral'],
  ['78421000', 'Intramuscular'],
  ['34206005', 'Subcutaneous'],
  ['47625008', 'Intravenous'],
  ['6064005', 'Topical'],
];

// [label, times per period, period unit]
export const FREQUENCIES = [
  ['once a day', 1, 'd'],
  ['twice a day', 2, 'd'],
  ['three times a day', 3, 'd'],
  ['four times a day', 4, 'd'],
  ['every other day', 1, 'd', 2],
  ['once a week', 1, 'wk'],
];

// OMB minimum categories (US Core race and ethnicity extensions)
export const RACES = [
  ['1002-5', 'American Indian or Alaska Native'],
  ['2028-9', 'Asian'],
  ['2054-5', 'Black or African American'],
  ['2076-8', 'Native Hawaiian or Other Pacific Islander'],
  ['2106-3', 'White'],
];
export const ETHNICITIES = [
  ['2135-2', 'Hispanic or Latino'],
  ['2186-5', 'Not Hispanic or Latino'],
];

// US Core gender identity (SNOMED CT, and null flavors)
export const GENDER_IDENTITIES = [
  ['446151000124109', 'Identifies as male gender', SYS.sct],
  ['446141000124107', 'Identifies as female gender', SYS.sct],
  ['33791000087105', 'Identifies as nonbinary gender', SYS.sct],
  ['OTH', 'other', SYS.nullFlavor],
  ['ASKU', 'asked but declined', SYS.nullFlavor],
];


export const US_CORE = 'http://hl7.org/fhir/us/core/StructureDefinition';
