// lib.mjs - what the browser tests share: a real `ehr serve` on a loopback
// port with the demo data, Debian's chromium driven by playwright-core,
// TOTP codes computed here (RFC 6238, independently of the server), and a
// loader that puts a Synthea bundle into the server through the FHIR API.

import { spawn, execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const EHR = process.env.EHR_BIN || join(ROOT, 'build', 'ehr');
export const SHOTS = process.env.EHR_E2E_SHOTS || join(ROOT, 'build-e2e', 'screenshots');
export const SYNTHEA = join(ROOT, '..', 'shared', 'data', 'synthea', 'r4-2019');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

// Start a server on a fresh database with the demo loaded. extra: more
// `ehr serve` options. Returns { url, db, dir, stop() }.
export async function startServer(extra = []) {
  const dir = mkdtempSync(join(tmpdir(), 'ehr-e2e-'));
  const db = join(dir, 'ehr.db');
  execFileSync(EHR, ['demo', '--db', db], { stdio: 'ignore' });
  const proc = spawn(EHR, ['serve', '--db', db, '--port', '0', '--bind', '127.0.0.1', '--threads', '4', ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=0' } });
  let out = '', err = '';
  proc.stderr.on('data', (d) => { err += d; });
  const url = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`ehr serve did not start:\n${out}\n${err}`)), 30000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /clinician app: (http:\/\/[^/\s]+)\//.exec(out);
      if (m) { clearTimeout(t); resolve(m[1].replace('localhost', '127.0.0.1')); }
    });
    proc.on('exit', (code) => { clearTimeout(t); reject(new Error(`ehr serve exited ${code}:\n${out}\n${err}`)); });
  });
  return {
    url, db, dir, log: () => err,
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => { proc.on('exit', r); setTimeout(r, 5000); });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// An access token for scripts (ehr token), e.g. to check what the app saved.
export function token(db, user = 'admin', scope = 'user/*.cruds') {
  const out = execFileSync(EHR, ['token', '--db', db, '--user', user, '--scope', scope]).toString().trim().split('\n');
  return out[out.length - 1].trim();
}

export async function api(srv, tok, method, path, body) {
  const r = await fetch(`${srv.url}/fhir/${path}`, {
    method, headers: { Authorization: `Bearer ${tok}`, Accept: 'application/fhir+json', ...(body ? { 'Content-Type': 'application/fhir+json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
}

// ---- TOTP (RFC 6238 over RFC 4226: HMAC-SHA1, 6 digits, 30 s) ----

function base32(s) {
  const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '', out = [];
  for (const c of s.replace(/=+$/, '').toUpperCase()) bits += A.indexOf(c).toString(2).padStart(5, '0');
  for (let i = 0; i + 8 <= bits.length; i += 8) out.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(out);
}

export function totp(secret, step) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32(secret)).update(msg).digest();
  const off = mac[19] & 15;
  const n = ((mac[off] & 0x7f) << 24) | (mac[off + 1] << 16) | (mac[off + 2] << 8) | mac[off + 3];
  return String(n % 1e6).padStart(6, '0');
}

// A code never used before for this secret: the server takes one step of
// drift and refuses a step twice, so each sign-in takes the next step.
const lastStep = new Map();
export async function freshCode(secret) {
  for (;;) {
    const now = Math.floor(Date.now() / 1000 / 30);
    const step = Math.max(now, (lastStep.get(secret) ?? -1) + 1);
    if (step <= now + 1) {
      lastStep.set(secret, step);
      return totp(secret, step);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// ---- the browser ----

export async function browser() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}

export async function shot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

// Sign in through the app's own screens. secrets: a Map user -> TOTP
// secret, filled at enrolment (first sign-in of a physician or nurse).
export async function signIn(page, srv, user, password, secrets) {
  await page.goto(`${srv.url}/`);
  await page.getByLabel('User name', { exact: true }).fill(user);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  const step = await Promise.race([
    page.waitForSelector('#totp-secret', { timeout: 20000 }).then(() => 'enroll'),
    page.waitForSelector('#signin-title:text("Second step")', { timeout: 20000 }).then(() => 'code'),
    page.waitForSelector('#topbar:not([hidden])', { timeout: 20000 }).then(() => 'in'),
  ]);
  if (step === 'enroll') {
    const secret = (await page.textContent('#totp-secret')).trim();
    secrets.set(user, secret);
    await page.getByLabel('Code', { exact: true }).fill(await freshCode(secret));
    await page.getByRole('button', { name: 'Confirm' }).click();
    await page.getByRole('button', { name: 'Continue' }).click();
  } else if (step === 'code') {
    await page.getByLabel('Code', { exact: true }).fill(await freshCode(secrets.get(user)));
    await page.getByRole('button', { name: 'Continue' }).click();
  }
  await page.waitForSelector('#topbar:not([hidden])', { timeout: 20000 });
}

// ---- Synthea through the FHIR API ----

// PUT every resource of a Synthea transaction Bundle at its own id, with
// urn:uuid references made relative. Returns the resources by type.
export async function loadSynthea(srv, tok, file, concurrency = 4) {
  const bundle = JSON.parse(readFileSync(file, 'utf8'));
  const ids = new Map();
  for (const e of bundle.entry) ids.set(e.fullUrl, `${e.resource.resourceType}/${e.resource.id}`);
  const fix = (v) => {
    if (Array.isArray(v)) return v.map(fix);
    if (v && typeof v === 'object') {
      const o = {};
      for (const [k, x] of Object.entries(v)) o[k] = k === 'reference' && typeof x === 'string' && ids.has(x) ? ids.get(x) : fix(x);
      return o;
    }
    return v;
  };
  const resources = bundle.entry.map((e) => fix(e.resource));
  const byType = {};
  for (const r of resources) (byType[r.resourceType] ||= []).push(r);
  let next = 0;
  const failures = [];
  const worker = async () => {
    while (next < resources.length) {
      const r = resources[next++];
      const res = await api(srv, tok, 'PUT', `${r.resourceType}/${r.id}`, r);
      if (res.status >= 300) failures.push(`${r.resourceType}/${r.id}: ${res.status} ${JSON.stringify(res.json).slice(0, 300)}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { byType, failures, patient: byType.Patient[0] };
}

export function syntheaFiles() {
  if (!existsSync(SYNTHEA)) return [];
  return execFileSync('ls', [SYNTHEA]).toString().split('\n').filter((f) => f.endsWith('.json')).map((f) => join(SYNTHEA, f));
}
