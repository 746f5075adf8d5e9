// breakglass.test.mjs - with the default --clinician-access panel, a chart
// outside the clinician's panel is not shown as an empty record: the app
// asks the server (/auth/access), says so, and offers emergency access
// (break-glass) with a reason; after it, the chart opens, and the grant is
// in the audit log.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, browser, signIn, shot, token, api, EHR } from './lib.mjs';
import { execFileSync } from 'node:child_process';

let srv, br, page, admin, pid;

before(async () => {
  srv = await startServer(['--token-ttl', '63']);
  admin = token(srv.db);
  const p = await api(srv, admin, 'POST', 'Patient', { resourceType: 'Patient', name: [{ family: 'Outside', given: ['Olga'] }], birthDate: '1950-06-01', gender: 'female' });
  pid = p.json.id;
  const o = await api(srv, admin, 'POST', 'Observation', { resourceType: 'Observation', status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory' }] }],
    code: { coding: [{ system: 'http://loinc.org', code: '2345-7', display: 'Glucose [Mass/volume] in Serum or Plasma' }] },
    subject: { reference: `Patient/${pid}` }, effectiveDateTime: '2026-01-05', valueQuantity: { value: 250, unit: 'mg/dL', system: 'http://unitsofmeasure.org', code: 'mg/dL' },
    referenceRange: [{ low: { value: 70, unit: 'mg/dL' }, high: { value: 99, unit: 'mg/dL' } }] });
  assert.equal(o.status, 201);
  br = await browser();
  page = await br.newPage();
});

after(async () => {
  if (br) await br.close();
  if (srv) await srv.stop();
});

test('the access token is refreshed before it expires (online_access)', async () => {
  await signIn(page, srv, 'dr.hansen', 'Demo-Physician-1', new Map());
  const t1 = await page.evaluate(() => JSON.parse(sessionStorage.getItem('ehr.token')));
  assert.ok(t1.refresh, 'a refresh token for online_access');
  // a 63 s token is refreshed when less than 60 s are left: wait 4 s, then use the app
  await page.waitForTimeout(4000);
  await page.goto(`${srv.url}/#/patient/emma`);
  await page.waitForSelector('body[data-chart=emma]');
  const t2 = await page.evaluate(() => JSON.parse(sessionStorage.getItem('ehr.token')));
  assert.notEqual(t2.access, t1.access, 'a new access token');
  assert.notEqual(t2.refresh, t1.refresh, 'the refresh token rotated');
  assert.equal((await fetch(`${srv.url}/fhir/Patient/emma`, { headers: { Authorization: `Bearer ${t2.access}` } })).status, 200);
  assert.ok(await page.locator('#labs li').count() > 0, 'the chart opened with the new token');
});

test('a chart outside the panel: said so, then opened by break-glass with a reason', async () => {
  await page.goto(`${srv.url}/#/patient/${pid}`);
  await page.waitForSelector(`body[data-chart="${pid}"]`);
  await page.locator('#no-access').waitFor();
  assert.equal(await page.locator('#labs').count(), 0, 'no empty chart pretending to be the record');
  assert.equal(await page.textContent('#pt-name'), 'Olga Outside');
  await shot(page, '10-no-access');
  await page.getByRole('button', { name: 'Emergency access (break-glass)' }).click();
  await page.getByLabel('Reason', { exact: true }).fill('short');
  await page.keyboard.press('Control+Enter');
  await page.locator('#glass-reason-err').waitFor({ state: 'visible' });
  await page.getByLabel('Reason', { exact: true }).fill('Unconscious in the emergency room, no one else on call');
  await page.keyboard.press('Control+Enter');
  await page.locator('#labs li.abnormal', { hasText: '250 mg/dL' }).waitFor();
  assert.equal(await page.locator('#no-access').count(), 0);
  const report = execFileSync(EHR, ['audit', 'report', '--db', srv.db, '--break-glass']).toString();
  assert.match(report, /dr\.hansen/);
  assert.match(report, new RegExp(pid));
});
