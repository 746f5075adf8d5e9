// idle.test.mjs - automatic logoff: with `ehr serve --session-idle 12` the
// app warns before the time-out (the server's, less its touch step), "Stay signed in" keeps the session, and
// after the time-out without activity it signs out: the session and its
// access token end on the server too.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, browser, signIn, shot } from './lib.mjs';

const IDLE = 20;
let srv, br, page;

before(async () => {
  srv = await startServer(['--session-idle', String(IDLE)]);
  br = await browser();
  page = await br.newPage();
});

after(async () => {
  if (br) await br.close();
  if (srv) await srv.stop();
});

test('warning, stay signed in, then automatic logoff that ends the token', async () => {
  await signIn(page, srv, 'nurse.berg', 'Demo-Nurse-1', new Map());
  const tok = await page.evaluate(() => JSON.parse(sessionStorage.getItem('ehr.token')).access);
  const t0 = Date.now();
  await page.locator('dialog#idle[open]').waitFor({ timeout: IDLE * 1000 });
  const warnedAfter = (Date.now() - t0) / 1000;
  assert.ok(warnedAfter < IDLE, `the warning came before the time-out (${warnedAfter} s)`);
  await shot(page, '08-idle-warning');
  await page.getByRole('button', { name: 'Stay signed in' }).click();
  assert.equal(await page.locator('dialog#idle[open]').count(), 0);
  // still signed in: the token works
  assert.equal((await fetch(`${srv.url}/fhir/Patient/emma`, { headers: { Authorization: `Bearer ${tok}` } })).status, 200);
  // now no activity at all until the sign-in screen comes back
  const t1 = Date.now();
  await page.getByText(/signed out after \d+ seconds without activity/).waitFor({ timeout: (IDLE + 8) * 1000 });
  assert.ok((Date.now() - t1) / 1000 <= IDLE, 'signed out no later than the server would end the session');
  await page.getByLabel('User name', { exact: true }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('ehr.token')), null);
  const r = await fetch(`${srv.url}/fhir/Patient/emma`, { headers: { Authorization: `Bearer ${tok}` } });
  assert.equal(r.status, 401, 'the access token ended with the session');
  await shot(page, '09-signed-out');
});
