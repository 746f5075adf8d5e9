// recent.js - the patients this user opened in this tab, newest first.

import { sortName, mrnOf } from './util.js';
import { session } from './auth.js';

const key = () => `ehr.recent.${session()?.user || ''}`;

export function rememberPatient(p) {
  const list = recentPatients().filter((x) => x.id !== p.id);
  list.unshift({ id: p.id, name: sortName(p), birthDate: p.birthDate || '', mrn: mrnOf(p), gender: p.gender || '' });
  sessionStorage.setItem(key(), JSON.stringify(list.slice(0, 10)));
}

export function recentPatients() {
  try { return JSON.parse(sessionStorage.getItem(key()) || '[]'); } catch (e) { return []; }
}
